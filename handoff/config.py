"""Settings of the handoff module (`SUPPORTBOT_HANDOFF__*`), part of supportbot's Settings."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handoff.hours import Hours, HoursError


class HandoffSettings(BaseModel):
    """Live operators: skill groups' working hours, capacity, SLA limits, events, consoles."""

    model_config = ConfigDict(extra="forbid")

    # Working hours per skill group: "mon-fri 09:00-18:00", "mon-sun 00:00-24:00", "sat 10:00-16:00",
    # several ranges separated by ", ". A group not listed works around the clock.
    hours: dict[str, str] = {
        "consult": "mon-sun 08:00-22:00",
        "tech": "mon-sun 00:00-24:00",
        "finance": "mon-fri 09:00-18:00",
        "complaints": "mon-fri 09:00-20:00",
    }
    timezone: str = "Europe/Moscow"
    max_chats: int = 3  # default concurrent chats per new operator
    missed_after: float = 60.0  # seconds an assigned operator has to answer before re-offer
    first_response_target: float = 60.0  # seconds: "timely first response" in SLA figures
    nps: bool = False  # after CSAT also ask NPS (0-10)
    redis_url: str | None = None  # live events between app processes; None = in-process
    # Prefix of this deployment's Redis keys and channels; None = derived from the database name
    # (handoff/events.py: redis_prefix). Set it when two deployments share one database name.
    redis_prefix: str | None = None
    secure_cookies: bool = False  # set True behind https (the console's session cookie)
    telegram_group_id: int | None = None  # a forum supergroup where operators answer in topics
    # Console login limits (handoff/console/security.py, README "Console login limits").
    # Reverse proxies whose X-Forwarded-For is believed: IPs or CIDRs, e.g. ["10.0.0.5",
    # "172.16.0.0/12"] or "10.0.0.5, 172.16.0.0/12"; empty = the peer's own address is the
    # client's. (`| str` only lets the environment give a comma list: it is always a list.)
    trusted_proxies: list[str] | str = []
    login_window: float = Field(default=300.0, gt=0)  # seconds every login limit counts over
    login_failures_per_login_ip: int = Field(default=5, ge=1)  # one login from one address
    login_failures_per_ip: int = Field(default=20, ge=1)  # any logins from one address
    login_spray_logins: int = Field(default=5, ge=1)  # distinct logins failing from one address
    # One login from addresses it never logged in from (a distributed guess); its own known
    # addresses are never held back by it.
    login_failures_per_login: int = Field(default=20, ge=1)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies_list(cls, value: object) -> object:
        if isinstance(value, str):  # "10.0.0.5, 10.1.0.0/16" as well as a JSON list
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: list[str] | str) -> list[str]:
        value = [value] if isinstance(value, str) else value
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _prefix_plain(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise ValueError("must be a non-empty word without spaces, e.g. supportbot-prod")
        return value

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, value: dict[str, str]) -> dict[str, str]:
        for group, spec in value.items():
            try:
                Hours.parse(spec)
            except HoursError as exc:
                raise ValueError(f"{group}: {exc}") from exc
        return value
