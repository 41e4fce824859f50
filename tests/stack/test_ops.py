"""The edge's operational doors on the real stack: /health without a token or data, /metrics for
admins, JSON 404s."""
from __future__ import annotations


import requests



def test_health_needs_no_token_and_shows_no_data(stack):
    r = requests.get(f"{stack['edge_url']}/health", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_metrics_are_for_admins(stack, edge_as):
    url = f"{stack['edge_url']}/metrics"
    assert requests.get(url, timeout=10).status_code == 401
    assert edge_as("alice").session.get(url, timeout=10).status_code == 403
    r = edge_as("admin").session.get(url, timeout=10)
    assert r.status_code == 200
    for name in ("yardlab_edge_request_duration_seconds", "yardlab_edge_rm_call_duration_seconds",
                 "yardlab_edge_snapshot_age_seconds", "yardlab_edge_kills_total"):
        assert name in r.text


def test_unknown_routes_are_json_404(edge_as):
    r = edge_as("alice").get("/nothing-here")
    assert r.status_code == 404
    assert r.json()["message"]
