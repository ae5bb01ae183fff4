"""Settings: environment variables `SUPPORTBOT_*` (nested with `__`), optionally a YAML file.

Secrets (tokens, webhook secrets) are read only from the environment; a YAML file that contains
one is refused, so a config file can be committed or shared safely.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from handoff.config import HandoffSettings

SECRET_KEYS = {"token", "webhook_secret", "secret", "rasa_token", "api_token"}


class ConfigError(ValueError):
    """A setting is missing or wrong; the message is one line naming the setting."""


class TelegramSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    mode: Literal["polling", "webhook"] = "polling"
    api_base: str | None = (
        None  # Bot API server; None = Telegram's cloud. The emulator's URL in tests.
    )
    webhook_url: str | None = (
        None  # public https URL Telegram posts to, ending in /webhook/telegram
    )
    webhook_secret: SecretStr | None = None
    # Webhook mode without a secret: anyone who finds the URL can post fake updates. Refused
    # unless this says the risk is taken knowingly (e.g. a private network).
    allow_webhook_without_secret: bool = False
    rate_per_chat: float = 1.0
    burst_per_chat: int = 2
    rate_overall: float = 25.0  # Telegram allows ~30 msg/s; the margin absorbs network jitter

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        """A bot token is `<bot id>:<secret>` (what @BotFather gives); the value is not echoed."""
        if value is None:
            return None
        left, sep, right = value.get_secret_value().partition(":")
        if not sep or not left.isdigit() or not right or any(c.isspace() for c in right):
            raise ValueError(
                "not a bot token: expected the shape 123456789:AAH... that @BotFather gives"
            )
        return value

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.token and self.mode == "webhook" and not self.webhook_url:
            raise ValueError("telegram.mode=webhook needs SUPPORTBOT_TELEGRAM__WEBHOOK_URL")
        if (
            self.token
            and self.mode == "webhook"
            and not self.webhook_secret
            and not self.allow_webhook_without_secret
        ):
            raise ValueError(
                "SUPPORTBOT_TELEGRAM__WEBHOOK_SECRET: webhook mode needs a secret (anyone who "
                "finds the URL could post fake updates); set it, or set "
                "SUPPORTBOT_TELEGRAM__ALLOW_WEBHOOK_WITHOUT_SECRET=true to run without one"
            )
        return self


class VKSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    group_id: int | None = None
    mode: Literal["longpoll", "callback"] = "longpoll"
    api_url: str | None = None  # None = VK's cloud. The emulator's /method/ URL in tests.
    confirmation_code: str | None = None  # Callback API: the string VK shows in the group settings
    secret: SecretStr | None = None  # Callback API secret key
    # Callback mode without a secret: anyone who finds the URL can post fake events (and read
    # the confirmation code). Refused unless this says the risk is taken knowingly.
    allow_callback_without_secret: bool = False
    rate_overall: float = 18.0  # VK allows 20 requests/s per token

    @model_validator(mode="after")
    def _needs_group(self) -> VKSettings:
        if self.token and self.group_id is None:
            raise ValueError("a VK token needs SUPPORTBOT_VK__GROUP_ID (the community id)")
        if self.token and self.mode == "callback" and not self.confirmation_code:
            raise ValueError("vk.mode=callback needs SUPPORTBOT_VK__CONFIRMATION_CODE")
        if (
            self.token
            and self.mode == "callback"
            and not self.secret
            and not self.allow_callback_without_secret
        ):
            raise ValueError(
                "SUPPORTBOT_VK__SECRET: Callback API mode needs the secret key (anyone who finds "
                "the URL could post fake events); set it, or set "
                "SUPPORTBOT_VK__ALLOW_CALLBACK_WITHOUT_SECRET=true to run without one"
            )
        return self


class NLUSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: Literal["embedded", "rasa"] = "embedded"
    # At or above it the bot answers the top intent; below it offers the top 3 as "did you mean"
    # buttons. Chosen by `supportbot nlu evaluate --test content/nlu_test/heldout.yml`: the lowest
    # threshold whose direct answers are >= 97% right, and the "did you mean" band
    # [suggest_floor, threshold) where the buttons hold the right intent often enough.
    # Figures: README, NLU.
    threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    # Below this the likely topics are not worth offering as "did you mean" buttons (they are
    # right for fewer than half of such messages): the bot says it did not understand instead.
    suggest_floor: float = Field(default=0.35, ge=0.0, le=1.0)
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: SecretStr | None = None
    rasa_timeout: float = 2.0  # seconds; past it the embedded engine answers instead
    # The embedded parse and the knowledge-base search run in a helper process (nlu/offload.py),
    # on another core than the event loop; off: in this process (the answers are the same).
    helper: bool = True


_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> Any:
    """A duration setting: 900 or "900" (seconds), "15m", "4h", "1d" become a timedelta; other
    text goes to pydantic (ISO 8601 "PT15M" works too)."""
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        unit = _UNIT_SECONDS[(m.group(2) or "s").lower()]
        return timedelta(seconds=float(m.group(1)) * unit)
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        raise ValueError(f"{value!r} is not a duration: write e.g. 900, 15m or 4h")
    return value


class IncidentSettings(BaseModel):
    """Outage detection (services/outages/): `threshold` distinct subscribers reporting no
    internet / no TV from one area within `window` open an incident, expected fixed in
    `default_eta`. Durations: seconds or "15m", "4h"."""

    model_config = ConfigDict(extra="forbid")

    threshold: int = Field(default=5, ge=1)
    window: timedelta = timedelta(minutes=15)
    default_eta: timedelta = timedelta(hours=4)

    @field_validator("window", "default_eta", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("window", "default_eta")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration, e.g. 900, 15m or 4h")
        return value


class VerificationSettings(BaseModel):
    """Verified identity (services/verification.py): a verification lasts `ttl` per channel
    account; a step-up (blocking a number, changing a tariff, a promised payment) needs one
    younger than `fresh`; at most `codes_per_hour` SMS codes per account and per number.
    Durations: seconds or "10m", "30d"."""

    model_config = ConfigDict(extra="forbid")

    ttl: timedelta = timedelta(days=30)
    fresh: timedelta = timedelta(minutes=10)
    codes_per_hour: int = Field(default=3, ge=1)  # SMS codes per chat account and per number

    @field_validator("ttl", "fresh", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("ttl", "fresh")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration, e.g. 600, 10m or 30d")
        return value


_KEEP_FOREVER = {"", "0", "none", "off", "never", "forever"}
MIN_RETENTION = timedelta(days=1)


def _retention(value: Any) -> Any:
    """A retention age: "365d", "36h" (or ISO 8601 "P365D"); 0 / "none" / "off" = keep forever
    (None). A bare number is refused: in the other duration settings it means seconds, which
    here would anonymise nearly everything at once."""
    no_unit = "has no unit: write e.g. 365d or 36h (0 or none: keep forever)"
    if value is None or (isinstance(value, str) and value.strip().lower() in _KEEP_FOREVER):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return None
        raise ValueError(f"{value!r} {no_unit}")
    if isinstance(value, str):
        if re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*", value):
            raise ValueError(f"{value!r} {no_unit}")
        if not _DURATION.fullmatch(value.strip()) and not value.strip().upper().startswith("P"):
            raise ValueError(f"{value!r} is not a duration: write e.g. 365d or 36h")
    return _duration(value)


class RetentionSettings(BaseModel):
    """How long personal data is kept (services/privacy/retention.py), per kind: `messages`
    (their texts, attachments, NLU text; then anonymised, rows kept for analytics),
    `processed_updates` (redelivery ids), `outbox` (finished delivery rows, with the message
    body), `uploads` (operator images, in the database). "365d", "36h"; 0 or "none" = forever. At least
    a day: "m" means minutes here, and "6m" for six months would erase nearly everything.
    `interval`: how often the app runs the pass."""

    model_config = ConfigDict(extra="forbid")

    messages: timedelta | None = timedelta(days=365)
    processed_updates: timedelta | None = timedelta(days=30)
    outbox: timedelta | None = timedelta(days=30)
    uploads: timedelta | None = timedelta(days=365)
    interval: timedelta = timedelta(hours=1)

    @field_validator("messages", "processed_updates", "outbox", "uploads", mode="before")
    @classmethod
    def _parse_retention(cls, value: Any) -> Any:
        return _retention(value)

    @field_validator("messages", "processed_updates", "outbox", "uploads")
    @classmethod
    def _at_least_a_day(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < MIN_RETENTION:
            raise ValueError(
                "must be at least 1d (m means minutes: six months is 183d), or 0/none: forever"
            )
        return value

    @field_validator("interval", mode="before")
    @classmethod
    def _parse_interval(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("must be at least a minute, e.g. 1h")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SUPPORTBOT_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = "sqlite:///supportbot.db"
    content_dir: Path = Path("content")
    # Where the live content comes from. files: content_dir, hot-reloaded from disk (one process,
    # or a shared disk; the console studio's publishes are written there). database: the newest
    # published version in the database (seeded from content_dir when there is none), which every
    # process follows within 2 s of a publish: the setting for several processes.
    content_store: Literal["files", "database"] = "files"
    data_dir: Path = Path("var")  # local state, e.g. where VK Long Poll resumes after a restart
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line (supportbot/logs.py)
    telegram: TelegramSettings = TelegramSettings()
    vk: VKSettings = VKSettings()
    nlu: NLUSettings = NLUSettings()
    # The billing/CRM integration (services/backend): `package.module:ClassName`.
    backend: str = "services.backend.demo:DemoBackend"
    # Every billing/CRM call: answered within this many seconds or "unavailable" (the flow's
    # on_error reply); at most this many at once (each holds a database connection meanwhile).
    backend_timeout: float = Field(default=5.0, gt=0)
    backend_concurrency: int = Field(default=6, ge=1)
    # Operator skill groups a flow can hand off to (`handoff: <group>` in content).
    skill_groups: list[str] = ["consult", "tech", "finance", "complaints"]
    handoff: HandoffSettings = HandoffSettings()
    incidents: IncidentSettings = IncidentSettings()
    verification: VerificationSettings = VerificationSettings()
    retention: RetentionSettings = RetentionSettings()
    # Bearer token for the integration API (/api/...: the CRM resolves tickets); unset = API off.
    api_token: SecretStr | None = None

    @field_validator("backend")
    @classmethod
    def _backend_loads(cls, value: str) -> str:
        """`package.module:ClassName` names a class that imports (it is built by the App)."""
        module_name, sep, attr = value.partition(":")
        attr = attr if sep else "Backend"  # services.backend.load_backend's default
        if not module_name or not attr:
            raise ValueError(f"{value!r} is not of the form package.module:ClassName")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # ImportError, or the module itself fails on import
            why = str(exc) if isinstance(exc, ImportError) else repr(exc)
            raise ValueError(f"{value!r}: cannot import {module_name}: {why}") from exc
        if not isinstance(getattr(module, attr, None), type):
            raise ValueError(f"{value!r}: {module_name} has no class {attr}")
        return value

    @model_validator(mode="after")
    def _known_timezone(self) -> Settings:
        try:
            ZoneInfo(self.handoff.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"SUPPORTBOT_HANDOFF__TIMEZONE: {self.handoff.timezone!r} is not a known time "
                "zone (an IANA name such as Europe/Moscow or Asia/Yekaterinburg)"
            ) from None
        return self


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from env (+ YAML file from the argument or SUPPORTBOT_CONFIG); raises ConfigError."""
    path = config_file or (Path(p) if (p := os.environ.get("SUPPORTBOT_CONFIG")) else None)
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            file_values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        if not isinstance(file_values, dict):
            raise ConfigError(f"config file {path}: expected a mapping of settings")
        leaked = _secret_paths(file_values)
        if leaked:
            raise ConfigError(
                f"config file {path}: {leaked[0]} is a secret; set it in the environment "
                f"(SUPPORTBOT_{leaked[0].upper().replace('.', '__')}) instead"
            )
    _check_variable_names(os.environ)
    try:
        # Environment wins over the file: file values are passed as defaults below the env.
        env = Settings(**overrides)
        merged = _merge(file_values, env.model_dump(exclude_unset=True, exclude_defaults=False))
        return Settings.model_validate({**merged, **overrides}) if file_values else env
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        name = f"SUPPORTBOT_{loc.upper().replace('.', '__')}" if loc else "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if msg.startswith("SUPPORTBOT_"):  # a check across settings names the one to change
            raise ConfigError(msg) from None
        raise ConfigError(f"{name}: {msg}") from None


# SUPPORTBOT_* variables read outside these settings: the config file's path, the Rasa
# server's own environment (nlu/rasa_runtime.py), the test suite's PostgreSQL and Chromium.
OTHER_VARIABLES = {"CONFIG", "RASA_PYTHON", "RASA_HOME", "TEST_PG_URL", "CHROMIUM"}


def variable_names() -> tuple[set[str], set[str]]:
    """Every SUPPORTBOT_* variable the app reads, and the prefixes of mapping settings whose
    keys are free (SUPPORTBOT_HANDOFF__HOURS__<group>)."""
    names = {f"SUPPORTBOT_{n}" for n in OTHER_VARIABLES}
    mappings = set()
    for name, field in Settings.model_fields.items():
        names.add(f"SUPPORTBOT_{name.upper()}")
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            for sub, subfield in kind.model_fields.items():
                names.add(f"SUPPORTBOT_{name.upper()}__{sub.upper()}")
                if get_origin(subfield.annotation) is dict:
                    mappings.add(f"SUPPORTBOT_{name.upper()}__{sub.upper()}__")
    return names, mappings


def _check_variable_names(environ: Mapping[str, str]) -> None:
    """A misspelt variable (SUPPORTBOT_DATABSE_URL) is an error naming the nearest valid one,
    not a silent fallback to the default (a local SQLite file instead of PostgreSQL)."""
    known, mappings = variable_names()
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(tuple(mappings)):
            continue
        if upper.startswith("SUPPORTBOT_") and upper not in known:
            near = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]}?" if near else " (see README: Configuration)"
            raise ConfigError(f"{name}: not a setting of supportbot{hint}")


def _secret_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found += _secret_paths(value, path + ".")
        elif key in SECRET_KEYS:
            found.append(path)
    return found


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
