"""Environment requests, checked field by field before anything is written anywhere.

:func:`parse_request` turns a POST body into a normalised request or raises :class:`FieldError`
naming the first bad field.  The site's limits come in as :class:`RequestRules` (built from
EnvironmentService's settings and the cluster's queues at the time of the request), so every rule
here is a plain function.  The naming rules (environment names, kernelspec names) live here too.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from rattler import Channel, MatchSpec

from ..auth import Identity
from ..errors import PublicError

NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")  # always used with fullmatch
QUEUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
#: pip "requirements" that are really local archives (uv would look for them in its working folder)
LOCAL_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|tar\.xz|zip|egg)\s*$", re.IGNORECASE)
#: a path or URL where a package name should be (pip also refuses VCS links, conda has none)
PIP_SOURCE = re.compile(r"^(\.{1,2}[/\\]|[/\\~]|[A-Za-z][A-Za-z0-9+.-]*://|git\+)")
CONDA_SOURCE = re.compile(r"^(\.{1,2}[/\\]|[/\\~]|[A-Za-z][A-Za-z0-9+.-]*://)")
#: credentials in URLs (user:password@, conda's /t/<token>/), never shown in logs or messages
SECRET_IN_URL = re.compile(r"(://)[^/@\s]+@|(/t/)[^/\s]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: one exact Maven coordinate group:artifact:version (always used with fullmatch); a version names one
#: release: no ranges ([1.0,2.0)), no dynamic forms (1.+, LATEST, RELEASE), no SNAPSHOTs (they change)
MAVEN_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"
MAVEN_COORDINATE = re.compile(rf"({MAVEN_PART}):({MAVEN_PART}):([A-Za-z0-9_][A-Za-z0-9_.-]{{0,63}})")
MAVEN_MOVING_VERSION = re.compile(r"(?i)^(latest|release)$|-snapshot$|^latest\.")
DEFAULT_LIMITS = {"driver_memory_mb": 4096, "driver_cores": 2, "executor_memory_mb": 4096, "executor_cores": 2,
                  "executor_instances": 4, "max_executors": 8}
RESOURCE_KEYS = ("driver_memory_mb", "driver_cores", "executor_memory_mb", "executor_cores",
                 "executor_instances", "dynamic_allocation", "queue")
FIELDS = {"name", "display_name", "kind", "resources", "packages", "visibility"}


class FieldError(PublicError):
    """A refused request field: the message and the field it concerns (for forms)."""

    def __init__(self, field: str | None, message: str, status: int = 400) -> None:
        super().__init__(status, message)
        self.field = field


@dataclass
class RequestRules:
    """What this site allows: EnvironmentService's settings plus the cluster's leaf queues."""

    defaults: dict
    limits: dict
    max_packages: int
    max_spec_length: int
    conda_channels: list[str]
    #: {hub group: [queue, ...]}, '*' for everyone; empty: any queue of the cluster
    allowed_queues: dict
    #: leaf queues by name and by path (empty: not known yet, any well-formed name passes)
    known_queues: set[str] = field(default_factory=set)

    def queues_for(self, who: Identity) -> set[str] | None:
        """Queues the caller may use (None: any queue of the cluster)."""
        if not self.allowed_queues:
            return None
        allowed: set[str] = set(self.allowed_queues.get("*", []))
        for group in who.groups:
            allowed |= set(self.allowed_queues.get(group, []))
        return allowed


def leaf_queues(cluster: dict | None) -> set[str]:
    """Names and paths of the leaf queues in a snapshot's cluster model."""
    queues = (cluster or {}).get("queues") or []
    return {q["name"] for q in queues if q.get("leaf")} | {q["path"] for q in queues if q.get("leaf")}


def redact(text: str) -> str:
    """``text`` with credentials in URLs replaced by ***."""
    return SECRET_IN_URL.sub(lambda m: (m.group(1) or m.group(2)) + "***" + ("@" if m.group(1) else ""), text)


def valid_owner(owner: str) -> bool:
    """Any hub user name that can stand in a URL path segment."""
    return 0 < len(owner) <= 128 and not CONTROL.search(owner) and "/" not in owner


def kernel_name_for(owner: str, name: str) -> str:
    """The kernelspec name ``yl-<owner>.<name>``: readable, and never the same for two environments.

    Environment names hold no '.', so the last '.' separates the name; an owner name outside
    [a-z0-9-] is cleaned and followed by a '.' and a hash of the real name (a clean owner name has no
    '.', so the two forms cannot meet).
    """
    if re.fullmatch(r"[a-z0-9-]{1,60}", owner):
        return f"yl-{owner}.{name}"
    safe = re.sub(r"[^a-z0-9-]", "-", owner.lower())[:40]
    return f"yl-{safe}.{hashlib.sha256(owner.encode()).hexdigest()[:12]}.{name}"


def parse_request(who: Identity, body: Any, rules: RequestRules) -> dict:
    """A POST body, checked field by field; FieldError for the first problem."""
    if not isinstance(body, dict):
        raise FieldError(None, "the body must be a JSON object describing the environment")
    unknown = set(body) - FIELDS
    if unknown:
        key = sorted(unknown)[0][:40]
        raise FieldError(key, f"unknown field {key!r}")
    name = body.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise FieldError("name", "name must start with a lower-case letter and hold only a-z, 0-9 and '-', "
                                 "at most 40 characters (like spark-pandas)")
    display = parse_display_name(body.get("display_name") or name)
    kind = body.get("kind", "pyspark")
    if kind not in ("pyspark", "python"):
        raise FieldError("kind", "kind must be pyspark or python")
    visibility = body.get("visibility", "personal")
    if visibility not in ("personal", "shared"):
        raise FieldError("visibility", "visibility must be personal or shared")
    if visibility == "shared" and not who.admin:
        raise FieldError("visibility", "only yardlab admins may create shared environments", status=403)
    packages = body.get("packages") or {}
    if not isinstance(packages, dict) or set(packages) - {"pip", "conda", "maven"}:
        raise FieldError("packages", 'packages must be {"pip": [...], "conda": [...], "maven": [...]}')
    return {
        "name": name, "display_name": display, "kind": kind, "visibility": visibility,
        "resources": parse_resources(who, body.get("resources"), rules),
        "packages": {"pip": parse_pip(packages.get("pip"), rules),
                     "conda": parse_conda(packages.get("conda"), rules),
                     "maven": parse_maven(packages.get("maven"), rules)},
    }


def parse_display_name(value: Any) -> str:
    if (not isinstance(value, str) or not value.strip() or len(value) > 100 or CONTROL.search(value)
            or any("\ud800" <= ch <= "\udfff" for ch in value)):
        raise FieldError("display_name", "display_name must be text of 1 to 100 characters")
    return value.strip()


def parse_resources(who: Identity, raw: Any, rules: RequestRules, base: dict | None = None) -> dict:
    """Spark resources within the site's limits, on a queue the caller may use; ``base`` for a PATCH."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise FieldError("resources", "resources must be an object of settings")
    unknown = set(raw) - set(RESOURCE_KEYS)
    if unknown:
        raise FieldError(f"resources.{sorted(unknown)[0][:40]}",
                         f"unknown resource setting {sorted(unknown)[0][:40]!r}; use {', '.join(RESOURCE_KEYS)}")
    res = {**rules.defaults, **(base or {}), **raw}
    lim = {**DEFAULT_LIMITS, **rules.limits}

    def number(key: str, low: int, high: int, unit: str = "") -> int:
        value = res.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"resources.{key}", f"{key} must be a whole number")
        if not low <= value <= high:
            raise FieldError(f"resources.{key}", f"{key} must be between {low} and {high}{unit} on this site")
        return value

    out: dict[str, Any] = {
        "driver_memory_mb": number("driver_memory_mb", 512, int(lim["driver_memory_mb"]), " MB"),
        "driver_cores": number("driver_cores", 1, int(lim["driver_cores"])),
        "executor_memory_mb": number("executor_memory_mb", 512, int(lim["executor_memory_mb"]), " MB"),
        "executor_cores": number("executor_cores", 1, int(lim["executor_cores"])),
        "executor_instances": number("executor_instances", 0, int(lim["executor_instances"])),
        "dynamic_allocation": None,
    }
    dyn = res.get("dynamic_allocation")
    if dyn is not None:
        if not isinstance(dyn, dict) or set(dyn) - {"min", "max"}:
            raise FieldError("resources.dynamic_allocation", 'dynamic_allocation must be null or {"min": n, "max": m}')
        lo, hi = dyn.get("min", 0), dyn.get("max")
        top = int(lim["max_executors"])
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)) or not 0 <= lo <= hi <= top:
            raise FieldError("resources.dynamic_allocation",
                             f"dynamic allocation needs whole numbers 0 <= min <= max <= {top}")
        out["dynamic_allocation"] = {"min": lo, "max": hi}
    queue = res.get("queue")
    if not isinstance(queue, str) or not QUEUE.fullmatch(queue):
        raise FieldError("resources.queue", "queue must be a queue name such as default")
    known = rules.known_queues
    if known and queue not in known:
        raise FieldError("resources.queue", f"there is no queue {queue!r} on this cluster; "
                                            f"queues: {', '.join(sorted(q for q in known if '.' not in q))}")
    allowed = rules.queues_for(who)
    if allowed is not None and queue not in allowed and not who.admin:
        raise FieldError("resources.queue", f"you may not use queue {queue!r}; yours: "
                                            f"{', '.join(sorted(allowed)) or 'none'}", status=403)
    out["queue"] = queue
    return out


def _spec_text(spec: Any, field: str, what: str, rules: RequestRules) -> tuple[str, str]:
    """One requirement or match spec, stripped and bounded, with the shortened form messages show."""
    if not isinstance(spec, str) or not spec.strip():
        raise FieldError(field, f"a {what} must be a non-empty string")
    spec = spec.strip()
    shown = spec[:60] + ("…" if len(spec) > 60 else "")
    if len(spec) > rules.max_spec_length:
        raise FieldError(field, f"{shown!r} is longer than {rules.max_spec_length} characters")
    return spec, shown


def _package_list(raw: Any, field: str, kind: str, rules: RequestRules, check: Callable[[], None] = lambda: None
                  ) -> list:
    """``raw`` as a list of at most ``rules.max_packages`` items (None or [] are none; ``check`` runs once the
    shape is right, before the count), or a FieldError on ``field`` naming ``kind`` (e.g. "pip requirements")."""
    if raw is None or raw == []:
        return []
    if not isinstance(raw, list):
        raise FieldError(field, f"{field} must be a list of {kind}")
    check()
    if len(raw) > rules.max_packages:
        raise FieldError(field, f"at most {rules.max_packages} {kind} per environment")
    return raw


def parse_pip(raw: Any, rules: RequestRules) -> list[str]:
    """PEP 508 requirements of packages from the index: no options, URLs, VCS links or local paths."""
    raw = _package_list(raw, "packages.pip", "pip requirements", rules)
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        field = f"packages.pip[{i}]"
        spec, shown = _spec_text(item, field, "pip requirement", rules)
        not_from_index = f"{shown!r}: URLs, VCS links and local paths are not allowed; name a package from the index"
        if CONTROL.search(spec):
            raise FieldError(field, f"{shown!r} contains a control character or a line break")
        if spec.startswith("-"):
            raise FieldError(field, f"{shown!r}: pip options (-r, -c, -e, --index-url, ...) are not allowed; "
                                    "give one requirement such as pandas==2.2.3")
        if PIP_SOURCE.match(spec) or LOCAL_ARCHIVE.search(spec):
            raise FieldError(field, not_from_index)
        try:
            req = Requirement(spec)
        except InvalidRequirement as e:
            first = str(e).splitlines()[0][:160]
            raise FieldError(field, f"{shown!r} is not a PEP 508 requirement: {first}") from e
        if req.url:
            raise FieldError(field, not_from_index)
        key = canonicalize_name(req.name)
        if key in seen:
            raise FieldError(field, f"{req.name} is listed twice")
        seen.add(key)
        out.append(str(req))
    return out


def parse_conda(raw: Any, rules: RequestRules) -> list[str]:
    """Conda match specs of packages from the site's channels only."""
    def channels() -> None:
        if not rules.conda_channels:
            raise FieldError("packages.conda", "this site has no conda channels configured; use pip packages")

    raw = _package_list(raw, "packages.conda", "conda match specs", rules, channels)
    if not raw:
        return []

    allowed = {Channel(c).base_url for c in rules.conda_channels}
    shown_channels = ", ".join(redact(c) for c in rules.conda_channels)
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        field = f"packages.conda[{i}]"
        spec, shown = _spec_text(item, field, "conda spec", rules)
        if CONTROL.search(spec) or spec.startswith("-"):
            raise FieldError(field, f"{shown!r} is not a conda match spec")
        _channel, sep, rest = spec.rpartition("::")
        if CONDA_SOURCE.match(rest):
            raise FieldError(field, f"{shown!r}: URLs and local paths are not allowed; name a package")
        try:
            ms = MatchSpec(spec)
        except Exception as e:  # noqa: BLE001 - rattler's own error types
            first = str(e).splitlines()[0][:160]
            raise FieldError(field, f"{shown!r} is not a conda match spec: {first}") from e
        if ms.channel is not None and ms.channel.base_url not in allowed:
            raise FieldError(field, f"{redact(shown)!r}: channel {redact(ms.channel.base_url)[:80]!r} is not "
                                    f"one of this site's channels ({shown_channels})")
        if "/" in rest or "\\" in rest or ("://" in spec and not sep):
            raise FieldError(field, f"{shown!r}: URLs and local paths are not allowed; name a package")
        name = getattr(ms.name, "normalized", None) or str(ms.name)
        if name in seen:
            raise FieldError(field, f"{name} is listed twice")
        seen.add(name)
        out.append(spec)
    return out


def parse_maven(raw: Any, rules: RequestRules) -> list[str]:
    """Exact Maven coordinates ``group:artifact:version`` of JVM packages from the site's repositories:
    no URLs, paths, version ranges, moving versions or options (the build resolves them with Maven)."""
    raw = _package_list(raw, "packages.maven", "Maven coordinates (group:artifact:version)", rules)
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        field = f"packages.maven[{i}]"
        spec, shown = _spec_text(item, field, "Maven coordinate", rules)
        if CONTROL.search(spec) or any(ch.isspace() for ch in spec):
            raise FieldError(field, f"{shown!r} contains a space, a control character or a line break")
        if spec.startswith("-"):
            raise FieldError(field, f"{shown!r}: options are not allowed; give a coordinate such as "
                                    "org.apache.commons:commons-csv:1.12.0")
        if "://" in spec or PIP_SOURCE.match(spec) or "/" in spec or "\\" in spec:
            raise FieldError(field, f"{shown!r}: URLs and local paths are not allowed; name an artifact from the "
                                    "site's Maven repositories as group:artifact:version")
        if any(ch in spec for ch in "[](),+*$"):
            raise FieldError(field, f"{shown!r}: version ranges and dynamic versions are not allowed; give one "
                                    "exact version, such as org.apache.commons:commons-csv:1.12.0")
        m = MAVEN_COORDINATE.fullmatch(spec)
        if not m:
            raise FieldError(field, f"{shown!r} is not a Maven coordinate group:artifact:version "
                                    "(for example org.apache.commons:commons-csv:1.12.0)")
        if MAVEN_MOVING_VERSION.search(m.group(3)):
            raise FieldError(field, f"{shown!r}: {m.group(3)} is not one release (LATEST, RELEASE and SNAPSHOT "
                                    "versions change); give an exact version")
        key = f"{m.group(1)}:{m.group(2)}"
        if key in seen:
            raise FieldError(field, f"{key} is listed twice")
        seen.add(key)
        out.append(spec)
    return out
