"""How tests and benchmarks reach Hadoop as the service account, as an operator would."""
from __future__ import annotations

import os
from pathlib import Path

import requests


class HadoopAuth:
    """How tests reach Hadoop as the service account, as an operator would: on the Kerberized stack
    with its keytab (SPNEGO for the REST APIs, a ticket cache for spark-submit), on the simple-auth
    stack with ``user.name``.  ``requests`` calls take ``auth=h.auth, params=h.params(...)``."""

    def __init__(self, stack: dict) -> None:
        self.service_user = stack["service_user"]
        self.secure = stack.get("security") == "kerberos"
        self.auth = None
        self.env: dict[str, str] = {}
        if self.secure:
            os.environ["KRB5_CONFIG"] = stack["krb5_conf"]
            # the edge's own login and SPNEGO auth: one implementation for the edge, launcher and tests
            from yardlab.edge.kerberos import Kerberos, SpnegoAuth

            ccache = Path(stack["state_dir"]) / "kdc" / "tests.ccache"
            ccache.unlink(missing_ok=True)  # a fresh login: never service tickets of an earlier KDC
            login = Kerberos(keytab=stack["service_keytab"], principal=stack["service_principal"], ccache=str(ccache))
            login.login()
            self.auth = SpnegoAuth(login)
            self.env = {"KRB5CCNAME": f"FILE:{ccache}", "KRB5_CONFIG": stack["krb5_conf"],
                        "SPARK_SUBMIT_OPTS": f"-Djava.security.krb5.conf={stack['krb5_conf']}"}

    @classmethod
    def of(cls, stack: dict) -> "HadoopAuth":
        """One per stack (a Kerberos login per test would be slow and pointless)."""
        key = (stack["state_dir"], stack.get("security"), stack.get("service_keytab"))
        if key not in _HADOOP_AUTH:
            _HADOOP_AUTH[key] = cls(stack)
        return _HADOOP_AUTH[key]

    def params(self, **params) -> dict:
        return params if self.secure else {"user.name": self.service_user, **params}

    def webhdfs(self, stack: dict, proxy: str | None = None):
        """The `hdfs` library's client as the service account, or as ``proxy`` through it (doas)."""
        from hdfs import Client, InsecureClient

        if not self.secure:
            return InsecureClient(stack["webhdfs_url"], user=self.service_user, proxy=proxy)
        session = requests.Session()
        session.auth = self.auth
        return Client(stack["webhdfs_url"], proxy=proxy, session=session)


_HADOOP_AUTH: dict[tuple, HadoopAuth] = {}
