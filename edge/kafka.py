"""Kafka: where the site's brokers are, and whether they answer.

The edge does not proxy Kafka: kernels talk to the brokers themselves.  It only tells users whether
Kafka is up, so the sidebar's capacity line can say "Kafka: up" or "Kafka: unreachable (<reason>)".
The answer comes from one metadata request (the admin API's DescribeCluster) every ``interval``
seconds in a thread, and is cached: requests never wait for a broker.  An empty
``bootstrap_servers`` means the site has no Kafka, and nothing is probed.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .loops import PeriodicTask


class KafkaUnreachable(Exception):
    """The brokers did not answer a metadata request; the message says why, in a few words."""


def _admin_client(**configs: Any) -> Any:
    """A KafkaAdminClient; one whose bootstrap fails stops its network thread before raising (kafka-python
    3.0 leaves it running, and a probe every few seconds against a broker that is down would pile them up)."""
    from kafka import KafkaAdminClient

    class ProbeClient(KafkaAdminClient):
        def __init__(self, **kw: Any) -> None:
            try:
                super().__init__(**kw)
            except Exception:
                for part in ("_client", "_net"):
                    stop = getattr(getattr(self, part, None), "close" if part == "_client" else "stop", None)
                    if stop is not None:
                        stop()
                raise

    return ProbeClient(**configs)


def describe_cluster(bootstrap_servers: str, timeout: float) -> dict[str, Any]:
    """Ask the brokers for the cluster's metadata (blocking: run it in a thread); its brokers and id."""
    from kafka.errors import KafkaError

    ms = int(timeout * 1000)
    try:
        client = _admin_client(bootstrap_servers=bootstrap_servers.split(","), client_id="yardlab-edge",
                               request_timeout_ms=ms, bootstrap_timeout_ms=ms, reconnect_backoff_max_ms=1000)
    except KafkaError as e:  # the bootstrap brokers did not answer (refused, timed out, unknown host)
        raise KafkaUnreachable(f"no broker answered at {bootstrap_servers} ({type(e).__name__})") from e
    try:
        meta = client.describe_cluster()
    except KafkaError as e:
        raise KafkaUnreachable(f"{type(e).__name__}: {str(e)[:200]}") from e
    finally:
        client.close()
    return {"brokers": len(meta.get("brokers") or []), "cluster_id": meta.get("cluster_id")}


class KafkaService(LoggingConfigurable):
    """The site's Kafka brokers, as users should address them, and whether they answered lately."""

    bootstrap_servers = Unicode(
        "", help="Kafka bootstrap servers (host:port, comma-separated) that kernels use, shown to users; "
                 "empty: this site has no Kafka.",
    ).tag(config=True)
    interval = Float(15.0, help="Seconds between two metadata requests to the brokers.").tag(config=True)
    timeout = Float(5.0, help="Seconds one metadata request may take.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.up: bool | None = None  # None: not asked yet
        self.reason: str | None = None
        self.brokers = 0
        self.checked: float | None = None
        self._task = PeriodicTask(self.check, self.interval, name="asking the Kafka brokers for their metadata",
                                  log=self.log)

    @property
    def configured(self) -> bool:
        return bool(self.bootstrap_servers.strip())

    def start(self) -> None:
        if self.configured:
            self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def check(self) -> bool:
        """One metadata request; the result is what ``view`` shows until the next one."""
        try:
            meta = await asyncio.to_thread(describe_cluster, self.bootstrap_servers, self.timeout)
        except KafkaUnreachable as e:
            if self.up is not False:
                self.log.warning("Kafka at %s is unreachable: %s", self.bootstrap_servers, e)
            self.up, self.reason, self.brokers = False, str(e), 0
        else:
            if self.up is False:
                self.log.info("Kafka at %s answers again", self.bootstrap_servers)
            self.up, self.reason, self.brokers = meta["brokers"] > 0, None, meta["brokers"]
            if not self.up:
                self.reason = "the cluster lists no broker"
        self.checked = time.time()
        return True  # an unreachable Kafka is an answer, not a failure of the loop

    def view(self) -> dict[str, Any] | None:
        """What users see: None when the site has no Kafka."""
        if not self.configured:
            return None
        return {"bootstrap_servers": self.bootstrap_servers, "up": self.up, "reason": self.reason,
                "brokers": self.brokers,
                "checked": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.checked)) if self.checked else None}

    def etag_part(self) -> str:
        return f"kafka-{self.up}-{self.brokers}-{hash(self.reason)}" if self.configured else ""
