"""The launcher refuses clearly when it cannot start: a taken port, no Java, a second copy."""
from __future__ import annotations

import pytest

import stack as stack_mod


def test_taken_port_is_named(stack, tmp_path):
    # the session's stack holds every port: a second stack in another folder must say which
    with pytest.raises(stack_mod.StackError) as err:
        stack_mod.Stack(tmp_path).preflight()
    message = str(err.value)
    assert "port 8088 (yarn_rm_http) is taken" in message
    assert "port 8000 (hub_public) is taken" in message


def test_second_launcher_on_the_same_folder_is_refused(stack):
    with pytest.raises(stack_mod.StackError, match="already running"):
        stack_mod.Stack(stack["state_dir"]).preflight()


def test_missing_java_is_reported(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent-bin")
    with pytest.raises(stack_mod.StackError, match="Java is missing"):
        stack_mod.java_home()
