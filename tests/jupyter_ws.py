"""A small, real Jupyter client: REST to start a kernel, the websocket channel protocol to run code.

Messages are built and parsed with jupyter_client's Session, as every Jupyter frontend does;
the transport is the kernel gateway websocket (``/api/kernels/<id>/channels``) used by
jupyter_server's GatewayClient, JupyterLab and nbclient alike.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import requests
import websocket
from jupyter_client.session import Session


@dataclass
class Reply:
    """What one execute_request produced."""

    status: str
    stdout: str = ""
    stderr: str = ""
    result: str = ""
    error: str = ""
    outputs: list[dict] = field(default_factory=list)


class KernelConnection:
    """One kernel on a Jupyter server or gateway, and an open channels websocket to it."""

    def __init__(self, base_url: str, token: str, kernel_id: str, username: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.kernel_id = kernel_id
        self.session = Session(username=username)
        self.ws: websocket.WebSocket | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @classmethod
    def start(cls, base_url: str, token: str, kernelspec: str, env: dict[str, str] | None = None,
              username: str = "", timeout: float = 330) -> "KernelConnection":
        r = requests.post(f"{base_url.rstrip('/')}/api/kernels", json={"name": kernelspec, "env": env or {}},
                          headers={"Authorization": f"token {token}"}, timeout=timeout)
        if r.status_code != 201:
            raise RuntimeError(f"starting {kernelspec} failed: {r.status_code} {r.text[:500]}")
        kc = cls(base_url, token, r.json()["id"], username)
        kc.connect()
        return kc

    def connect(self, timeout: float = 60) -> None:
        url = self.base_url.replace("http", "ws", 1) + f"/api/kernels/{self.kernel_id}/channels"
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=timeout)

    def execute(self, code: str, timeout: float = 300, msg_id: str | None = None) -> Reply:
        """Run ``code``; ``msg_id`` names the execute request (the id a notebook cell's request has)."""
        assert self.ws is not None
        msg = self.session.msg("execute_request", {"code": code, "silent": False, "store_history": False,
                                                    "user_expressions": {}, "allow_stdin": False,
                                                    "stop_on_error": True})
        if msg_id:
            msg["header"]["msg_id"] = msg_id
            msg["msg_id"] = msg_id
        msg["channel"] = "shell"
        self.ws.send(json.dumps(msg, default=str))
        reply = Reply(status="")
        # done when both the shell reply and iopub's "idle" for this request have arrived: the two
        # channels are not ordered with respect to each other
        idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(1.0, deadline - time.monotonic()))
            m = json.loads(self.ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, content = m["msg_type"], m["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                else:
                    reply.stderr += content["text"]
            elif kind in ("execute_result", "display_data"):
                reply.outputs.append(content)
                reply.result += content.get("data", {}).get("text/plain", "")
            elif kind == "error":
                reply.error = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                reply.status = content["status"]
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            if idle and reply.status:
                return reply
        raise TimeoutError(f"no execute_reply within {timeout} s for {code!r}")

    def shutdown(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - closing a dead socket is fine
                pass
            self.ws = None
        requests.delete(f"{self.base_url}/api/kernels/{self.kernel_id}", headers=self.headers, timeout=120)
