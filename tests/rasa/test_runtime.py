"""nlu.rasa_runtime without Rasa: finding Python, the venv marker, a server that dies at start."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nlu import rasa_runtime
from nlu.rasa_runtime import RASA_VERSION, RasaSetupError


def _fake_venv(home: Path, rasa_script: str) -> Path:
    venv = home / f"venv-{RASA_VERSION}"
    (venv / "bin").mkdir(parents=True)
    rasa = venv / "bin" / "rasa"
    rasa.write_text(f"#!/bin/sh\n{rasa_script}\n", encoding="utf-8")
    rasa.chmod(0o755)
    (venv / f".supportbot-rasa-{RASA_VERSION}").write_text("x", encoding="utf-8")
    return venv


def test_python_from_env_must_be_3_8_to_3_10(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTBOT_RASA_PYTHON", sys.executable)  # the 3.11+ of our venv
    with pytest.raises(RasaSetupError, match=r"is Python 3\.1[1-9]; Rasa 3\.6 needs Python 3\.8"):
        rasa_runtime.find_python()
    monkeypatch.setenv("SUPPORTBOT_RASA_PYTHON", "/nonexistent/python3.10")
    with pytest.raises(RasaSetupError, match=r"does not run; Rasa 3\.6 needs Python 3\.8-3\.10"):
        rasa_runtime.find_python()


def test_no_python_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SUPPORTBOT_RASA_PYTHON", raising=False)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no pyenv, no python3.10
    with pytest.raises(RasaSetupError) as info:
        rasa_runtime.find_python()
    assert str(info.value) == (
        "Rasa 3.6 needs Python 3.8-3.10; install python3.10 or set SUPPORTBOT_RASA_PYTHON"
    )


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUPPORTBOT_RASA_HOME", str(tmp_path / "h"))
    assert rasa_runtime.default_home() == tmp_path / "h"
    monkeypatch.delenv("SUPPORTBOT_RASA_HOME")
    assert rasa_runtime.default_home() == Path.home() / ".cache" / "supportbot" / "rasa"


def test_installed_venv_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = _fake_venv(tmp_path, "exit 0")
    monkeypatch.setenv("SUPPORTBOT_RASA_PYTHON", "/nonexistent")  # would fail if it rebuilt
    assert rasa_runtime.ensure_venv(tmp_path) == venv.resolve()


def test_server_dying_at_start_reports_its_log(tmp_path: Path) -> None:
    _fake_venv(
        tmp_path, 'echo "loading model..."; echo "OSError: model file is broken" >&2; exit 3'
    )
    model = tmp_path / "m.tar.gz"
    model.write_bytes(b"")
    with pytest.raises(RasaSetupError) as info:
        rasa_runtime.serve(tmp_path, model, token="secret-token", ready_timeout=30)
    message = str(info.value)
    assert message.startswith("rasa run exited with code 3 before it was ready")
    assert "OSError: model file is broken" in message


def test_server_never_ready_is_stopped(tmp_path: Path) -> None:
    _fake_venv(tmp_path, 'echo "hanging"; exec sleep 60')
    model = tmp_path / "m.tar.gz"
    model.write_bytes(b"")
    with pytest.raises(RasaSetupError, match=r"not ready within 1 s(.|\n)*hanging"):
        rasa_runtime.serve(tmp_path, model, token="t", ready_timeout=1)
    assert os.listdir(tmp_path / "logs")
