"""Build and run a real Rasa 3.6 server for development and CI (never imported by the bot itself).

Rasa 3.6.21 needs Python 3.8-3.10 and pins pydantic 1 / SQLAlchemy 1.4 / aiohttp 3.9, so it lives
in its own virtualenv under `home` (default `SUPPORTBOT_RASA_HOME` or `~/.cache/supportbot/rasa`,
outside the repository so CI runs on one machine share it):

    {home}/venv-3.6.21/          rasa==3.6.21, installed once (marker file)
    {home}/models/{hash}.tar.gz  one trained model per training-data hash (see `data_hash`)
    {home}/logs/                 the server logs

Every function here is **synchronous and blocking** (subprocesses, pip, training): call them from
sync code or, from async code, through `asyncio.to_thread`. Concurrent callers (parallel CI jobs)
are serialised by file locks, so the venv is built and a model trained only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from nlu.rasa_project import project_hash

RASA_VERSION = "3.6.21"
PYTHON_HINT = "Rasa 3.6 needs Python 3.8-3.10; install python3.10 or set SUPPORTBOT_RASA_PYTHON"
_MARKER = f".supportbot-rasa-{RASA_VERSION}"


class RasaSetupError(RuntimeError):
    """Rasa could not be installed, trained or started; the message is one line (plus log tail)."""


def default_home() -> Path:
    env = os.environ.get("SUPPORTBOT_RASA_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "supportbot" / "rasa"


# --- Python 3.10 and the venv -------------------------------------------------------------------


def find_python() -> Path:
    """A Python 3.8-3.10: `SUPPORTBOT_RASA_PYTHON`, then pyenv's 3.10.*, then python3.10 on PATH."""
    env = os.environ.get("SUPPORTBOT_RASA_PYTHON")
    if env:
        path = Path(env).expanduser()
        version = _python_version(path)
        if version is None:
            raise RasaSetupError(f"SUPPORTBOT_RASA_PYTHON={env} does not run; {PYTHON_HINT}")
        if not (3, 8) <= version <= (3, 10):
            raise RasaSetupError(
                f"SUPPORTBOT_RASA_PYTHON={env} is Python {version[0]}.{version[1]}; {PYTHON_HINT}"
            )
        return path
    for candidate in [*_pyenv_pythons(), *_path_pythons()]:
        version = _python_version(candidate)
        if version is not None and (3, 8) <= version <= (3, 10):
            return candidate
    raise RasaSetupError(PYTHON_HINT)


def _pyenv_pythons() -> list[Path]:
    root: str | None = None
    if shutil.which("pyenv"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
    root = root or os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(root) / "versions"
    found = []
    for d in versions.glob("3.10.*"):
        m = re.fullmatch(r"3\.10\.(\d+)", d.name)
        if m and (d / "bin" / "python").exists():
            found.append((int(m.group(1)), d / "bin" / "python"))
    return [p for _, p in sorted(found, reverse=True)]


def _path_pythons() -> list[Path]:
    which = shutil.which("python3.10")
    return [Path(which)] if which else []


def _python_version(python: Path) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
            env=_clean_env(),
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def ensure_venv(home: Path | None = None, *, python: Path | None = None) -> Path:
    """`{home}/venv-3.6.21` with rasa installed (once; later calls return at once). pip's output
    goes to this process's stdout/stderr, so a person sees the ~3 min first install progress."""
    home = (home or default_home()).expanduser().resolve()
    venv = home / f"venv-{RASA_VERSION}"
    if (venv / _MARKER).exists() and (venv / "bin" / "rasa").exists():
        return venv
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".venv.lock"):
        if (venv / _MARKER).exists() and (venv / "bin" / "rasa").exists():
            return venv  # built by a concurrent caller while we waited
        interpreter = python or find_python()
        print(
            f"supportbot: installing rasa=={RASA_VERSION} into {venv} with {interpreter} "
            "(once; ~3 min, ~2.7 GB)",
            file=sys.stderr,
            flush=True,
        )
        if not (venv / "bin" / "python").exists():
            _run([str(interpreter), "-m", "venv", "--clear", str(venv)], "creating the venv")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "install", "--upgrade", "pip<25"], "upgrading pip")
        _run([*pip, "install", f"rasa=={RASA_VERSION}"], f"pip install rasa=={RASA_VERSION}")
        if not (venv / "bin" / "rasa").exists():
            raise RasaSetupError(f"pip install finished but {venv}/bin/rasa is missing")
        (venv / _MARKER).write_text(f"rasa=={RASA_VERSION}\n", encoding="utf-8")
    return venv


# --- training -----------------------------------------------------------------------------------


def model_path(home: Path, project: Path) -> Path:
    """Where the model for this exported project lives (whether trained yet or not)."""
    return (home / "models" / f"{project_hash(project)}.tar.gz").expanduser().resolve()


def train(home: Path | None, project: Path, *, quiet: bool = False) -> Path:
    """The trained NLU model of `project` (an `export_project` output): `{home}/models/{hash}.tar.gz`,
    trained with `rasa train nlu` only when absent. Training output is shown unless `quiet`."""
    home = (home or default_home()).expanduser().resolve()
    project = project.resolve()
    target = model_path(home, project)
    if target.exists():
        return target
    venv = ensure_venv(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{target.name}.lock"):
        if target.exists():
            return target
        name = target.name.removesuffix(".tar.gz")
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".train-") as tmp:
            cmd = [
                str(venv / "bin" / "rasa"),
                "train",
                "nlu",
                "--config",
                str(project / "config.yml"),
                "--nlu",
                str(project / "data"),
                "--domain",
                str(project / "domain.yml"),
                "--out",
                tmp,
                "--fixed-model-name",
                name,
            ]
            log = Path(tmp) / "train.log"
            started = time.monotonic()
            _run(cmd, "rasa train nlu", cwd=project, log=log if quiet else None)
            produced = Path(tmp) / f"{name}.tar.gz"
            if not produced.exists():
                raise RasaSetupError(f"rasa train nlu produced no {produced.name}")
            os.replace(produced, target)
        print(
            f"supportbot: trained {target} in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return target


# --- serving ------------------------------------------------------------------------------------


@dataclass
class RasaServer:
    """A running `rasa run --enable-api` subprocess; `stop()` (or leaving `with`) ends it."""

    url: str
    token: str
    model: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after `timeout` seconds."""
        if self.process.poll() is not None:
            return
        _signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait(5)

    def __enter__(self) -> RasaServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def serve(
    home: Path | None,
    model: Path,
    *,
    token: str,
    port: int | None = None,
    host: str = "127.0.0.1",
    project: Path | None = None,
    ready_timeout: float = 120.0,
) -> RasaServer:
    """Start `rasa run --enable-api` on `host:port` (a free port if None) with `model` and wait
    until `/status` answers with the model loaded. Raises RasaSetupError with the last lines of
    Rasa's log if it dies or is not ready within `ready_timeout` seconds."""
    home = (home or default_home()).expanduser().resolve()
    venv = ensure_venv(home)
    port = port or free_port(host)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"rasa-{port}.log"
    cmd = [
        str(venv / "bin" / "rasa"),
        "run",
        "--enable-api",
        "--auth-token",
        token,
        "-i",
        host,
        "-p",
        str(port),
        "--model",
        str(model.resolve()),
    ]
    if project is not None:
        cmd += ["--endpoints", str(project / "endpoints.yml")]
        cmd += ["--credentials", str(project / "credentials.yml")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(project or home),
            env=_clean_env(venv),
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
    url = f"http://{host}:{port}"
    server = RasaServer(url=url, token=token, model=model, log_path=log_path, process=process)
    deadline = time.monotonic() + ready_timeout
    while True:
        if process.poll() is not None:
            raise RasaSetupError(
                f"rasa run exited with code {process.returncode} before it was ready; "
                f"last lines of {log_path}:\n{server.log_tail()}"
            )
        if _status_ready(url, token):
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RasaSetupError(
                f"rasa run was not ready within {ready_timeout:.0f} s; "
                f"last lines of {log_path}:\n{server.log_tail()}"
            )
        time.sleep(0.3)


def _status_ready(url: str, token: str) -> bool:
    request = urllib.request.Request(f"{url}/status?token={urllib.parse.quote(token)}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            body = json.loads(response.read() or b"{}")
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return isinstance(body, dict) and bool(body.get("model_file") or body.get("model_id"))


# --- helpers ------------------------------------------------------------------------------------


def _clean_env(venv: Path | None = None) -> dict[str, str]:
    """Our environment minus what would leak our Python 3.11 venv into Rasa's interpreter."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYENV_VERSION"}
    }
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    # Rasa 3.6's dependencies print ~20 lines of DeprecationWarnings at start: keep the log useful.
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def _run(cmd: list[str], what: str, *, cwd: Path | None = None, log: Path | None = None) -> None:
    """Run `cmd` with output to our terminal (or to `log`); RasaSetupError on failure."""
    venv = Path(cmd[0]).parent.parent if "/venv-" in cmd[0] else None
    try:
        if log is None:
            result = subprocess.run(cmd, cwd=cwd, env=_clean_env(venv), stdin=subprocess.DEVNULL)
        else:
            with log.open("wb") as out:
                result = subprocess.run(
                    cmd,
                    cwd=cwd,
                    env=_clean_env(venv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
    except OSError as exc:
        raise RasaSetupError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if result.returncode != 0:
        tail = f"; last lines:\n{_tail(log)}" if log is not None else " (see the output above)"
        raise RasaSetupError(f"{what} failed with exit code {result.returncode}{tail}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return "(no log)"


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # the server's own session (start_new_session=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
