"""The edge's Kerberos login: the service keytab, a ticket cache kept fresh, SPNEGO headers for Hadoop.

On a Kerberized cluster Hadoop ignores ``user.name=``: the edge proves who it is with a ticket from
its own keytab and still acts for users through ``doAs``/``doas`` (it is a Hadoop proxy user).  Users
hold no keytab; only the edge does.

:class:`Kerberos` logs in at start (a wrong keytab stops the edge with a sentence that names the
principal and the file), then checks the KDC every ``renew_interval`` with a fresh AS exchange, so a
stopped KDC or a keytab whose keys went stale shows in /health and the log within one interval,
before the ticket runs out.  The ticket cache (``ccache``, a FILE cache, mode 0600) is what Enterprise
Gateway and spark-submit read through KRB5CCNAME; it is replaced atomically when its ticket has less
than a third of its life left, so readers never see half a file.

python-gssapi (MIT krb5) does the work; every call of it may wait on the network, so it runs in a
thread of this class's own, never on the event loop.  With ``keytab`` empty nothing here runs and
the edge uses Hadoop's simple authentication, as before.
"""
from __future__ import annotations

import asyncio
import base64
import errno
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from requests import PreparedRequest
from requests.auth import AuthBase
from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .loops import PeriodicTask

T = TypeVar("T")

# MIT krb5 minor status codes (com_err values as unsigned 32-bit) that get a sentence of their own
KDC_UNREACHABLE = {-1765328228 & 0xFFFFFFFF,  # KRB5_KDC_UNREACH: Cannot contact any KDC for realm
                   -1765328164 & 0xFFFFFFFF}  # KRB5_REALM_CANT_RESOLVE: Cannot resolve network address for KDC
WRONG_KEY = {-1765328360 & 0xFFFFFFFF,  # KRB5KDC_ERR_PREAUTH_FAILED
             -1765328353 & 0xFFFFFFFF}  # KRB5KRB_AP_ERR_BAD_INTEGRITY: Decrypt integrity check failed
UNKNOWN_CLIENT = -1765328378 & 0xFFFFFFFF  # KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN
UNKNOWN_SERVER = -1765328377 & 0xFFFFFFFF  # KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN


class KerberosError(Exception):
    """No Kerberos credentials can be had now; the message is one sentence, free of secrets, fit for the
    log, /health and the callers' "unavailable" answers."""


def _gssapi() -> Any:
    """python-gssapi, imported only when Kerberos is on (an edge on simple auth does not need it)."""
    try:
        import gssapi
    except ImportError as e:
        raise KerberosError("python-gssapi is not installed (pip install gssapi, built against MIT krb5); "
                            "the edge needs it when Kerberos.keytab is set") from e
    return gssapi


class Kerberos(LoggingConfigurable):
    """The edge's own Kerberos identity: logs in from the keytab, keeps the ticket cache fresh, makes
    SPNEGO ``Authorization`` headers, and says in ``last_error`` why it cannot when it cannot."""

    keytab = Unicode(
        "",
        help="""The edge's keytab (readable by the edge's account only). Empty: Kerberos is off and the edge
        uses Hadoop's simple authentication (``user.name=``).""",
    ).tag(config=True)
    principal = Unicode(
        "",
        help="The principal the edge logs in as, from the keytab, e.g. yardlab@EXAMPLE.COM (the Hadoop proxy user).",
    ).tag(config=True)
    ccache = Unicode(
        "yardlab-edge.ccache",
        help="""The FILE ticket cache the edge keeps filled (mode 0600) for Enterprise Gateway and
        spark-submit, which read it through KRB5CCNAME. Replaced atomically, never rewritten in place.""",
    ).tag(config=True)
    renew_interval = Float(
        60.0,
        help="""Seconds between checks with the KDC. Each check is a fresh login from the keytab, so a stopped
        KDC or a stale keytab shows in /health within one interval; the ticket cache is replaced when its
        ticket has less than a third of its lifetime left.""",
    ).tag(config=True)
    kdc_timeout = Float(
        10.0,
        help="""Seconds a check waits for the KDC before /health says it does not answer. The check itself
        goes on: MIT krb5 gives up on a KDC that takes connections but never answers only after about
        a minute.""",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: why credentials cannot be had now (a sentence), or None; set by the checks, read by /health
        self.last_error: str | None = None
        self.creds: Any = None  # gssapi.Credentials bound to the FILE ccache, refreshed from the keytab
        self._executor: ThreadPoolExecutor | None = None
        self._task: PeriodicTask | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self.keytab)

    @property
    def ccache_path(self) -> str:
        return os.path.abspath(self.ccache)

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Log in once (raising :class:`KerberosError` that names the principal and the keytab if that
        fails), then check the KDC every ``renew_interval``."""
        if not self.enabled:
            return
        if not self.principal:
            raise KerberosError(f"Kerberos.keytab is set ({self.keytab}) but Kerberos.principal is not: "
                                "say which principal of the keytab the edge logs in as")
        try:
            await self.run(self.login)
        except KerberosError as e:
            raise KerberosError(f"cannot log in to Kerberos as {self.principal} with the keytab {self.keytab}: "
                                f"{e}") from e
        self.log.info("logged in to Kerberos as %s (keytab %s, ticket cache %s)", self.principal, self.keytab,
                      self.ccache_path)
        self._task = PeriodicTask(self.check, self.renew_interval, wait_first=True,
                                  name="checking the edge's Kerberos login", log=self.log)
        self._task.start()

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a blocking gssapi call in this class's threads (they may wait on the KDC)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(4, thread_name_prefix="kerberos")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def check(self) -> bool:
        """One round of the periodic check: a fresh AS exchange (and the ticket cache replaced when due);
        ``last_error`` says why it failed, and is cleared by the next success."""
        force = self._failed
        work = asyncio.ensure_future(self.run(lambda: self.refresh(force=force)))
        try:
            try:
                await asyncio.wait_for(asyncio.shield(work), self.kdc_timeout)
            except asyncio.TimeoutError:
                self._fail(f"{kdc_description(self.principal)} has not answered in {self.kdc_timeout:g} s")
                await work  # the real outcome follows when MIT gives up or the KDC answers
        except KerberosError as e:
            self._fail(str(e))
            return False
        finally:
            if not work.done():  # cancelled (the edge stops): the thread finishes on its own
                work.cancel()
        if self.last_error:
            self.log.info("Kerberos: logged in as %s again", self.principal)
        self.last_error, self._failed = None, False
        return True

    def _fail(self, reason: str) -> None:
        if reason != self.last_error:
            self.log.warning("Kerberos: %s; Hadoop calls fail once the edge's tickets run out", reason)
        self.last_error, self._failed = reason, True

    # -- blocking parts (threads) -------------------------------------------------------------------------------
    def login(self) -> None:
        """The first login: a fresh ticket into the cache, and the credentials the clients use."""
        gssapi = _gssapi()
        self.refresh(force=True)
        try:
            self.creds = gssapi.Credentials(name=self._name(), usage="initiate",
                                            store={"client_keytab": self.keytab, "ccache": f"FILE:{self.ccache_path}"})
        except gssapi.exceptions.GSSError as e:
            raise KerberosError(self._describe(e)) from e

    def refresh(self, force: bool = False) -> None:
        """Log in from the keytab into a new cache (an AS exchange: the KDC is asked every time) and move it
        over ``ccache`` when forced, when the cache is missing, or when its ticket is past two thirds of its
        life."""
        gssapi = _gssapi()
        self._check_keytab()
        path = self.ccache_path
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            try:
                fresh = gssapi.Credentials(name=self._name(), usage="initiate",
                                           store={"client_keytab": self.keytab, "ccache": f"FILE:{tmp}"})
            except gssapi.exceptions.GSSError as e:
                raise KerberosError(self._describe(e)) from e
            lifetime = fresh.lifetime or 0
            del fresh
            if force or self._remaining(path) < lifetime / 3:
                os.chmod(tmp, 0o600)  # MIT creates it 0600 already; this only makes sure
                os.replace(tmp, path)
                self.log.debug("Kerberos: ticket cache %s refreshed (ticket valid %d s)", path, lifetime)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def negotiate_header(self, host: str) -> str:
        """``Negotiate <token>`` for the SPNEGO service ``HTTP@host`` (Hadoop's web endpoints); blocking."""
        gssapi = _gssapi()
        if self.creds is None:
            raise KerberosError(self.last_error or f"the edge has not logged in to Kerberos as {self.principal}")
        try:
            ctx = gssapi.SecurityContext(name=gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service),
                                         creds=self.creds, usage="initiate")
            token = ctx.step()
        except gssapi.exceptions.GSSError as e:
            raise KerberosError(self._describe(e, service=f"HTTP/{host}")) from e
        return "Negotiate " + base64.b64encode(token).decode("ascii")

    async def authorization(self, url: str) -> str:
        """The ``Authorization`` header for ``url``'s host, made in a thread."""
        host = urlsplit(url).hostname or ""
        return await self.run(lambda: self.negotiate_header(host))

    def _name(self) -> Any:
        gssapi = _gssapi()
        return gssapi.Name(self.principal, gssapi.NameType.kerberos_principal)

    def _check_keytab(self) -> None:
        """Fail with a clear sentence when the keytab is missing, unreadable or has no key for the principal
        (MIT's login error says only "no credentials cache found" for all three)."""
        gssapi = _gssapi()
        try:
            gssapi.Credentials(name=self._name(), usage="accept", store={"keytab": self.keytab})
        except gssapi.exceptions.GSSError as e:
            if e.min_code == errno.ENOENT:
                raise KerberosError(f"the keytab {self.keytab} does not exist") from e
            if e.min_code == errno.EACCES:
                raise KerberosError(f"the keytab {self.keytab} cannot be read by this account") from e
            if "no key table entry" in _minor(e).lower():
                raise KerberosError(f"the keytab {self.keytab} has no key for {self.principal}") from e
            raise KerberosError(f"the keytab {self.keytab} cannot be used: {_minor(e)}") from e

    def _remaining(self, path: str) -> float:
        """Seconds the ticket in the cache at ``path`` is still valid; 0 when there is none (local only)."""
        gssapi = _gssapi()
        try:
            creds = gssapi.Credentials(name=self._name(), usage="initiate", store={"ccache": f"FILE:{path}"})
            return float(creds.lifetime or 0)
        except gssapi.exceptions.GSSError:
            return 0.0

    def _describe(self, error: Exception, service: str | None = None) -> str:
        """A GSS error as one sentence that says what to fix."""
        code, minor = getattr(error, "min_code", None), _minor(error)
        if code in KDC_UNREACHABLE:
            return f"{kdc_description(self.principal)} is unreachable: {minor}"
        if code in WRONG_KEY:
            return (f"the keytab {self.keytab} has a wrong key for {self.principal} (the KDC refused it: "
                    f"{minor}); export the keytab again")
        if code == UNKNOWN_CLIENT:
            return f"the KDC does not know the principal {self.principal}"
        if code == UNKNOWN_SERVER and service:
            return f"the KDC does not know the service principal {service}"
        if service:
            return f"no Kerberos ticket for {service} could be had: {minor}"
        return minor


class SpnegoAuth(AuthBase):
    """requests' auth for Hadoop's SPNEGO endpoints: a fresh ``Negotiate`` header on every request.

    Stateless, so one instance serves the WebHDFS client's threads at once (requests-gssapi's
    HTTPSPNEGOAuth keeps per-host contexts and the body position on itself).  The header is sent up
    front: Hadoop's Kerberos tokens complete in one leg, so there is no 401 round trip, and a
    streamed body never has to be sent twice.  The session keeps Hadoop's ``hadoop.auth`` cookie, which
    the NameNode checks first.
    """

    def __init__(self, kerberos: Kerberos) -> None:
        self.kerberos = kerberos

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = self.kerberos.negotiate_header(urlsplit(request.url or "").hostname or "")
        return request


def _minor(error: Exception) -> str:
    """The minor (mechanism) part of a GSS error, which is the part that says what happened."""
    try:
        texts = error.get_all_statuses(error.min_code, False)  # type: ignore[attr-defined]
        text = " ".join(t for t in texts if t).strip()
    except Exception:  # noqa: BLE001 - the message is a courtesy; the error itself stands
        text = ""
    return text or str(error)


def kdc_description(principal: str) -> str:
    """"the KDC at <host:port>" for the principal's realm, from krb5.conf when it lists the KDC."""
    kdcs = configured_kdcs(principal.rpartition("@")[2] if "@" in principal else None)
    if not kdcs:
        return "the KDC"
    return f"the KDC at {kdcs[0]}" if len(kdcs) == 1 else f"the KDCs at {', '.join(kdcs)}"


def configured_kdcs(realm: str | None) -> list[str]:
    """The ``kdc`` entries of ``realm`` (or the default realm) in the krb5.conf files MIT reads
    ($KRB5_CONFIG, else /etc/krb5.conf); empty when they cannot be told."""
    files = os.environ.get("KRB5_CONFIG", "/etc/krb5.conf").split(":")
    section, current, default_realm = "", None, None
    kdcs: dict[str, list[str]] = {}
    for file in files:
        try:
            with open(file, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for raw in lines:
            line = raw.split("#", 1)[0].split(";", 1)[0].strip()
            if m := re.fullmatch(r"\[(\w+)\]", line):
                section, current = m.group(1), None
            elif section == "libdefaults" and (m := re.fullmatch(r"default_realm\s*=\s*(\S+)", line)):
                default_realm = default_realm or m.group(1)
            elif section == "realms" and (m := re.fullmatch(r"(\S+)\s*=\s*\{", line)):
                current = m.group(1)
            elif section == "realms" and line == "}":
                current = None
            elif section == "realms" and current and (m := re.fullmatch(r"kdc\s*=\s*(\S+)", line)):
                kdcs.setdefault(current, []).append(m.group(1))
    return kdcs.get(realm or default_realm or "", [])
