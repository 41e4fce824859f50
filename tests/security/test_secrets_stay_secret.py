"""No token or secret of the stack ends up where people or other users read: logs (the pieces', the
audit log, environment build logs, YARN container logs, which users read through the RM) and the
databases the services keep.

It runs after the stack tests (tests/security comes after tests/stack in pytest.ini), so the logs
hold a whole suite's traffic: logins, kernels, environments, uploads, the Spark UI, refusals.
The files that must hold a secret (the token files the services read at start, keytabs, the hub's
own database of token hashes) are not scanned; everything else under the state folder's logs is.
"""
from __future__ import annotations

from pathlib import Path

import requests


def secrets_of(stack) -> dict[str, str]:
    """Every secret the stack made, by what it is (values of 16 characters or more only)."""
    found = {f"{user}'s hub token": token for user, token in stack["user_tokens"].items()}
    found.update({"the edge's hub token": stack["edge_service_token"],
                  "the hub service's token": stack["hub_service_token"],
                  "Enterprise Gateway's token": stack["eg_token"]})
    hub_cookie = Path(stack["state_dir"], "hub", "jupyterhub_cookie_secret")
    if hub_cookie.exists():
        found["the hub's cookie secret"] = hub_cookie.read_text().strip()
    return {what: value for what, value in found.items() if value and len(value) >= 16}


def readable_records(stack) -> list[Path]:
    """Logs and databases: the launcher's logs (with YARN's container logs), the audit log, build logs."""
    state = Path(stack["state_dir"])
    files = [p for p in Path(stack["logs"]).rglob("*") if p.is_file()]
    files += [Path(stack["edge_audit_log"])]
    files += [p for p in (state / "edge").rglob("*") if p.is_file() and (p.suffix in (".log", ".sqlite", ".jsonl")
                                                                          or "log" in p.name)]
    files += [p for p in (state / "hub-service").rglob("*.sqlite")]
    return sorted({p for p in files if p.exists()})


def test_no_secret_is_in_any_log_or_database(stack, edge_as):
    # a few requests that carry tokens the ways clients send them, so the logs have had their chance
    for user in ("alice", "bob"):
        token = stack["user_tokens"][user]
        requests.get(f"{stack['edge_url']}/api/v1/me", headers={"Authorization": f"token {token}"}, timeout=30)
        requests.get(f"{stack['edge_public_url']}/api/v1/apps", headers={"Authorization": f"Bearer {token}"},
                     timeout=30)
        requests.get(f"{stack['hub_service_url']}/api/v1/me", params={"token": token}, timeout=30)
    edge_as("alice")("POST", "/environments", data=b"{bad", headers={"Content-Type": "application/json"})
    secrets = secrets_of(stack)
    assert len(secrets) >= 6, sorted(secrets)
    files = readable_records(stack)
    assert any(p.name == "edge.log" for p in files) and any("containers" in p.parts for p in files), files[:20]
    leaks = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as e:
            leaks.append(f"{path}: cannot read ({e})")
            continue
        for what, value in secrets.items():
            if value.encode() in data:
                leaks.append(f"{what} is in {path}")
    assert not leaks, "\n".join(leaks)
