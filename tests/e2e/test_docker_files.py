"""The Dockerfile and compose.yaml, checked without Docker (its registry is not reachable where the
tests run): the services are there and wait for healthy dependencies, every SUPPORTBOT_*
variable they set is a setting and their values load, the image runs `supportbot run` as a
non-root user, and its HEALTHCHECK command passes against a running app and fails without one."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from supportbot.settings import load_settings, variable_names
from tests.e2e.conftest import free_port
from tests.support import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def instructions(keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction, continuation lines joined."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [
        line.split(None, 1)[1].strip()
        for line in joined.splitlines()
        if line.split(None, 1)[:1] == [keyword]
    ]


def test_compose_runs_the_app_with_postgres_and_redis_and_rasa_under_a_profile() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"app", "postgres", "redis", "rasa"}
    assert services["rasa"]["profiles"] == ["rasa"]
    assert all("profiles" not in services[name] for name in ("app", "postgres", "redis"))
    app = services["app"]
    assert app["build"] == "."
    assert app["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert app["ports"] == ["127.0.0.1:8080:8080"]  # internal endpoints never on a public port
    assert app["stop_grace_period"] == "30s"
    assert set(COMPOSE["volumes"]) == {"appdata", "pgdata"}
    assert app["volumes"] == ["appdata:/app/var"]


def test_every_supportbot_variable_is_a_setting_and_the_values_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    known, _ = variable_names()
    environment: dict[str, str] = COMPOSE["services"]["app"]["environment"]
    used = (
        set(environment)
        | set(INTERPOLATION.findall(COMPOSE_TEXT))
        | set(re.findall(r"\bSUPPORTBOT_\w+", COMPOSE_TEXT + DOCKERFILE))
    )
    assert {name for name in used if name.startswith("SUPPORTBOT_")} <= known

    dockerfile_env = dict(
        pair.split("=", 1) for args in instructions("ENV") for pair in args.split()
    )
    for name in list(dockerfile_env) + list(environment):
        monkeypatch.delenv(name, raising=False)
    values = {
        **{k: v for k, v in dockerfile_env.items() if k.startswith("SUPPORTBOT_")},
        **{k: INTERPOLATION.sub("pw", str(v)) for k, v in environment.items()},
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.database_url == "postgresql://supportbot:pw@postgres:5432/supportbot"
    assert settings.handoff.redis_url == "redis://redis:6379/0"
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080)
    assert settings.log_format == "json"
    assert str(settings.content_dir) == "/app/content" and str(settings.data_dir) == "/app/var"


def test_the_image_runs_supportbot_as_a_non_root_user() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]
    assert json.loads(instructions("CMD")[-1]) == ["supportbot", "run"]
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    # Nothing runs as root after the switch, and everything it copies exists and is not ignored.
    after_user = DOCKERFILE.split("\nUSER ", 1)[1]
    assert "\nRUN " not in after_user and "\nCOPY " not in after_user
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for args in instructions("COPY"):
        *sources, _target = args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source not in ignored, source
    assert {".venv", "var", ".env", ".git"} <= ignored


async def healthcheck(port: int) -> int:
    """The exit code of the image's HEALTHCHECK command, run against 127.0.0.1:`port`."""
    [args] = instructions("HEALTHCHECK")
    command = json.loads(args.split("CMD", 1)[1])
    assert command[0] == "python"
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:],
        env={"SUPPORTBOT_HTTP_PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_healthcheck_passes_on_a_running_app_and_fails_without_one(
    start_app: Callable[..., Any],
) -> None:
    app = await start_app()
    port = int(app.url.rsplit(":", 1)[1])
    assert await healthcheck(port) == 0
    assert await healthcheck(free_port()) != 0
