"""Tests of the yardlab jupyter_server extension, against a real in-process Jupyter server."""
from __future__ import annotations

import json
from importlib.metadata import version

import pytest
from tornado.httpclient import HTTPClientError

from yardlab.server_extension import YardlabExtension

pytest_plugins = ["pytest_jupyter.jupyter_server"]

EDGE_URL = "http://edge.example.org:8080"


@pytest.fixture
def jp_server_config() -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"yardlab.server_extension": True}},
        "YardlabExtension": {"edge_url": EDGE_URL},
    }


async def test_status_reports_version_and_edge_url(jp_fetch) -> None:
    response = await jp_fetch("yardlab", "api", "status")

    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == {"version": version("yardlab"), "edge_url": EDGE_URL}


@pytest.mark.parametrize("authorization", ["", "token not-the-server-token"])
async def test_status_rejects_requests_without_a_valid_token(jp_fetch, authorization) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("yardlab", "api", "status", headers={"Authorization": authorization})

    assert caught.value.code in (401, 403)


def test_edge_url_defaults_to_environment(monkeypatch) -> None:
    monkeypatch.setenv(YardlabExtension.edge_url_env, EDGE_URL)

    assert YardlabExtension().edge_url == EDGE_URL


def test_edge_url_is_empty_without_environment(monkeypatch) -> None:
    monkeypatch.delenv(YardlabExtension.edge_url_env, raising=False)

    assert YardlabExtension().edge_url == ""
