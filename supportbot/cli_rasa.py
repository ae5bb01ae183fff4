"""`supportbot rasa ...`: export the NLU data as a Rasa project, or run a real Rasa server locally.

    supportbot rasa export rasa-project            # then train/run it with Docker (docs/rasa.md)
    supportbot rasa serve --port 5005               # venv + train (both cached) + server, Ctrl-C stops

The slow parts (pip, training, waiting for the server) are blocking functions of
`nlu.rasa_runtime`, run here in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from nlu import rasa_runtime
from nlu.rasa_project import RasaProjectError, data_hash, export_project
from supportbot.settings import ConfigError, Settings


def add_rasa_commands(sub: argparse._SubParsersAction) -> None:
    """Register `rasa export` and `rasa serve` on the `supportbot` command's subparsers."""
    rasa = sub.add_parser(
        "rasa", help="export the NLU data for Rasa 3.6, or run a local Rasa server"
    )
    rasa_sub = rasa.add_subparsers(title="rasa commands", metavar="RASA_COMMAND")

    export = rasa_sub.add_parser(
        "export", help="write a complete Rasa 3.6 project (config, domain, data) into DIR"
    )
    export.add_argument("dir", type=Path, metavar="DIR", help="output directory")
    export.add_argument(
        "--content", type=Path, default=None, help="content directory (default: settings)"
    )
    export.set_defaults(func=_export)

    serve = rasa_sub.add_parser(
        "serve",
        help="install Rasa 3.6.21 (once), train (cached by data hash) and run it until Ctrl-C",
    )
    serve.add_argument("--port", type=int, default=5005, help="port (default 5005)")
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument(
        "--token",
        default=None,
        help="API token (default: SUPPORTBOT_NLU__RASA_TOKEN, else a random one)",
    )
    serve.add_argument(
        "--content", type=Path, default=None, help="content directory (default: settings)"
    )
    serve.add_argument(
        "--home",
        type=Path,
        default=None,
        help="venv/models cache (default: SUPPORTBOT_RASA_HOME or ~/.cache/supportbot/rasa)",
    )
    serve.set_defaults(func=_serve)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    content: Path = args.content or settings.content_dir
    try:
        out = await asyncio.to_thread(export_project, content, args.dir)
        digest = await asyncio.to_thread(data_hash, content)
    except RasaProjectError as exc:
        raise ConfigError(str(exc)) from exc
    except OSError as exc:
        raise ConfigError(f"rasa export: {exc}") from exc
    print(f"Rasa project written to {out} (data hash {digest[:12]})")
    print(f"train:  docker run --rm -v {out.resolve()}:/app rasa/rasa:3.6.21-full train nlu")
    return 0


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    content: Path = args.content or settings.content_dir
    home: Path = (args.home or rasa_runtime.default_home()).expanduser().resolve()
    given_token = args.token or os.environ.get("SUPPORTBOT_NLU__RASA_TOKEN")
    token = given_token or secrets.token_urlsafe(18)
    try:
        project = await asyncio.to_thread(_export_cached, content, home)
        await asyncio.to_thread(rasa_runtime.ensure_venv, home)
        model = await asyncio.to_thread(rasa_runtime.train, home, project)
        print(f"starting Rasa {rasa_runtime.RASA_VERSION} on {args.host}:{args.port} ...")
        server = await asyncio.to_thread(
            rasa_runtime.serve,
            home,
            model,
            token=token,
            port=args.port,
            host=args.host,
            project=project,
        )
    except RasaProjectError as exc:
        raise ConfigError(str(exc)) from exc
    except rasa_runtime.RasaSetupError as exc:
        raise ConfigError(str(exc).replace(token, "***")) from exc
    try:
        shown = token if given_token is None else "<your token>"
        print(f"Rasa is serving {model.name} at {server.url} (log: {server.log_path})")
        print("Point the bot at it:")
        print(
            f"  export SUPPORTBOT_NLU__ENGINE=rasa SUPPORTBOT_NLU__RASA_URL={server.url} "
            f"SUPPORTBOT_NLU__RASA_TOKEN={shown}"
        )
        print("Ctrl-C stops it.", flush=True)
        code = await _wait_for_stop(server)
        if code:
            print(
                f"supportbot: rasa exited with code {code}; last lines of {server.log_path}:\n"
                f"{server.log_tail()}",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        server.stop()  # blocking on purpose: we are shutting down, nothing else runs


async def _wait_for_stop(server: rasa_runtime.RasaServer) -> int:
    """Until Ctrl-C / SIGTERM (returns 0) or until Rasa exits by itself (returns its code)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    exited = asyncio.ensure_future(asyncio.to_thread(server.process.wait))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    if stop.is_set() or not exited.done():
        print("stopping Rasa ...", flush=True)
        await asyncio.to_thread(server.stop)
        await exited
        return 0
    return exited.result() or 1


def _export_cached(content: Path, home: Path) -> Path:
    """The project for `content` under `{home}/projects/{hash}` (exported once per hash)."""
    digest = data_hash(content)
    project = home / "projects" / digest
    if (project / "config.yml").exists():
        return project
    project.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=project.parent))
    try:
        export_project(content, staging)
        try:
            staging.rename(project)
        except OSError:  # a concurrent export of the same hash won the race
            if not (project / "config.yml").exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return project
