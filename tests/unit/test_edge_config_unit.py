"""EdgeApp's configuration: each class holds its own settings; the shortcuts EdgeApp used to hold for
other classes still work (a warning naming the new setting, the value forwarded); the local stack's
config uses only current names; --generate-config documents the services."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from traitlets.config.loader import PyFileConfigLoader

from yardlab.edge.app import MOVED, EdgeApp

ROOT = Path(__file__).resolve().parents[2]


def test_deprecated_edge_settings_warn_and_are_forwarded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = EdgeApp()
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    app.log.addHandler(handler)
    try:
        settings = _with_deprecated_settings(app, tmp_path)
    finally:
        app.log.removeHandler(handler)
    jobs, kernels, identifier = settings["jobs"], settings["kernels"], settings["identifier"]
    assert (jobs.kill_timeout, jobs.kill_poll, jobs.page_cache_bytes) == (5.0, 0.25, 4096)
    assert jobs.audit.path == str(tmp_path / "audit.jsonl")
    assert (kernels.max_kernels_per_user, kernels.kernels_dir) == (7, str(tmp_path / "kernels"))
    assert (identifier.hub_api_url, identifier.hub_api_token) == ("http://hub:8081/hub/api", "t0ken")
    for old, (cls, new) in MOVED.items():
        assert any(f"EdgeApp.{old} is deprecated" in m and f"{cls.__name__}.{new}" in m for m in seen), old


def _with_deprecated_settings(app: EdgeApp, tmp_path: Path) -> dict:
    app.initialize([f"--EdgeApp.audit_log={tmp_path / 'audit.jsonl'}", "--EdgeApp.kill_timeout=5",
                    "--EdgeApp.apps_cache_bytes=4096", "--EdgeApp.max_kernels_per_user=7",
                    f"--EdgeApp.kernels_dir={tmp_path / 'kernels'}", "--EdgeApp.hub_api_url=http://hub:8081/hub/api",
                    "--EdgeApp.hub_api_token=t0ken", "--JobService.kill_poll=0.25",
                    f"--KernelLedger.db_url=sqlite:///{tmp_path / 'edge.sqlite'}"])
    return app.make_app().settings


def test_the_new_settings_apply_without_warnings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = EdgeApp()
    app.initialize(["--JobService.kill_timeout=7", "--KernelService.max_kernels_per_user=2",
                    f"--KernelLedger.db_url=sqlite:///{tmp_path / 'edge.sqlite'}"])
    settings = app.make_app().settings
    assert settings["jobs"].kill_timeout == 7.0 and settings["kernels"].max_kernels_per_user == 2


def test_the_local_stack_config_uses_only_current_names(tmp_path, monkeypatch):
    stack = {"ports": {"edge_http": 1, "hub_internal": 2, "eg_http": 3}, "edge_audit_log": "a.jsonl",
             "edge_service_token": "t", "rm_url": "http://rm", "service_user": "yarn", "webhdfs_url": "http://nn",
             "state_dir": str(tmp_path), "kernels_dir": str(tmp_path / "k"), "eg_command": "eg", "eg_env": {},
             "eg_state_file": "eg.json", "logs": str(tmp_path), "kernel_site": str(tmp_path),
             "conda_channel": str(tmp_path)}
    (tmp_path / "stack.json").write_text(json.dumps(stack))
    monkeypatch.setenv("YARDLAB_STACK_JSON", str(tmp_path / "stack.json"))
    config = PyFileConfigLoader("edge_config.py", path=str(ROOT / "dev")).load_config()
    classes = {cls.__name__: cls for cls in [EdgeApp, *EdgeApp.classes]}
    for section, traits in config.items():
        assert not set(traits) - set(classes[section].class_trait_names(config=True)), section
    assert not set(config.EdgeApp) & set(MOVED)
    assert config.KernelService.kernels_dir == str(tmp_path / "k")


def test_generate_config_documents_the_services():
    text = EdgeApp().generate_config_file()
    for setting in ("JobService.kill_timeout", "JobService.page_cache_bytes", "JobService.unknown_ttl",
                    "KernelService.max_kernels_per_user", "KernelService.min_allocation_mb",
                    "KernelService.kernels_dir", "GatewayClient.request_timeout", "GatewaySupervisor.client_class"):
        assert f"# c.{setting} =" in text, setting


def test_a_config_file_that_fails_stops_the_edge_with_a_sentence(tmp_path, capsys):
    """traitlets would log the error and run on the defaults: an edge without its Kerberos login,
    limits or reaper.  The edge exits instead, naming the file and the error."""
    bad = tmp_path / "edge_config.py"
    bad.write_text("c = get_config()\nc.EdgeApp.port = 1\ninfo = {}\ninfo['missing']\n")
    app = EdgeApp()
    with pytest.raises(SystemExit) as exit_:
        app.initialize(["--config", str(bad)])
    assert exit_.value.code == 1
    said = capsys.readouterr().err
    assert f"the config file {bad} failed, so the edge does not start: KeyError: 'missing'" in said, said


def test_the_owner_of_the_shipped_environments_is_a_reserved_name(tmp_path, monkeypatch):
    """A hub user named like EnvironmentService.predefined_owner would own the base of everyone's kernels."""
    monkeypatch.chdir(tmp_path)
    app = EdgeApp()
    app.initialize(["--EnvironmentService.predefined_owner=site-envs",
                    f"--KernelLedger.db_url=sqlite:///{tmp_path / 'edge.sqlite'}"])
    identifier = app.make_app().settings["identifier"]
    assert identifier.is_reserved("Site-Envs") and not identifier.is_reserved("alice")
