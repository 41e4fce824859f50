"""Tell the edge which notebook each kernel serves.

Kernels reach the edge through jupyter_server's GatewayClient, which sends only the kernel's
working folder (KERNEL_WORKING_DIR).  The Lab server knows more: each session ties a kernel to a
notebook, a console or a file.  After the server's session manager creates a session or changes
its path (a notebook renamed or moved), the edge is told with this server's own hub token, so the
jobs list names ``work/analysis.ipynb`` and the edge can check the kernel is the caller's.
A failed report is logged and never fails the session.
"""
from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

#: seconds one report may take (the edge answers from memory; a session never waits longer)
REPORT_TIMEOUT = 5.0


async def report_session(edge_url: str, token: str, model: dict[str, Any], log: logging.Logger) -> int | None:
    """PUT the session's type and path to the edge; the edge's status, or None when it was not reached."""
    kernel = (model or {}).get("kernel") or {}
    if not kernel.get("id"):
        return None
    url = f"{edge_url.rstrip('/')}/api/v1/kernels/{quote(kernel['id'], safe='')}/session"
    body = json.dumps({"type": model.get("type") or "notebook", "path": model.get("path")})
    req = HTTPRequest(url, method="PUT", body=body, request_timeout=REPORT_TIMEOUT, connect_timeout=REPORT_TIMEOUT,
                      headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    except (OSError, HTTPClientError) as e:
        log.warning("yardlab: could not tell the edge what kernel %s serves: %s", kernel["id"], e)
        return None
    if resp.code != 200:
        log.warning("yardlab: the edge refused the session of kernel %s: %s %s", kernel["id"], resp.code,
                    (resp.body or b"")[:300].decode(errors="replace"))
    return resp.code


def follow_sessions(manager: Any, edge_url: str, token: str, log: logging.Logger) -> None:
    """Report every session the manager creates, and every change of a session's path, type or kernel."""
    create, update = manager.create_session, manager.update_session

    async def create_session(*args: Any, **kwargs: Any) -> dict:
        model = await create(*args, **kwargs)
        await report_session(edge_url, token, model, log)
        return model

    async def update_session(session_id: str, **kwargs: Any) -> None:
        await update(session_id, **kwargs)
        if {"path", "type", "kernel_id"} & set(kwargs):
            await report_session(edge_url, token, await manager.get_session(session_id=session_id), log)

    manager.create_session = create_session
    manager.update_session = update_session
