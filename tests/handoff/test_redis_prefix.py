"""Two deployments on one Redis keep their live events apart: each has its own prefix (set, or
derived from its database name) and its channel names the Redis database number."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handoff.events import LocalBus, RedisBus, redis_prefix
from supportbot.app import App
from supportbot.settings import ConfigError, Settings, load_settings
from tests.support import CONTENT

REDIS_A = "redis://127.0.0.1:6379/12"
REDIS_B = "redis://127.0.0.1:6379/13"


class Listener:
    """Everything a bus delivers to one subscriber, in order."""

    def __init__(self, bus: LocalBus) -> None:
        self.got: list[dict[str, object]] = []
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._collect(bus.subscribe()))

    async def _collect(self, events: AsyncIterator[dict[str, object]]) -> None:
        async for event in events:
            self.got.append(event)
            self._new.set()

    async def wait_for(self, event: dict[str, object]) -> None:
        async with asyncio.timeout(5):
            while event not in self.got:
                self._new.clear()
                await self._new.wait()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def buses() -> AsyncIterator[list[RedisBus]]:
    made: list[RedisBus] = []
    yield made
    for bus in made:
        await bus.close()


async def started(made: list[RedisBus], url: str, prefix: str) -> RedisBus:
    bus = RedisBus(url, prefix)
    await bus.start()
    made.append(bus)
    return bus


async def test_same_prefix_shares_events_another_prefix_or_db_does_not(
    buses: list[RedisBus],
) -> None:
    one = await started(buses, REDIS_A, "supportbot:alpha")
    same = await started(buses, REDIS_A, "supportbot:alpha")  # a replica of `one`
    other = await started(buses, REDIS_A, "supportbot:beta")  # another deployment, same Redis db
    other_db = await started(buses, REDIS_B, "supportbot:alpha")  # same prefix, Redis db 13
    listeners = [Listener(b) for b in (one, same, other, other_db)]
    await asyncio.sleep(0.1)  # subscriptions registered
    event = {"type": "queued", "conversation_id": 7}
    one.publish(event)
    await listeners[1].wait_for(event)  # the replica sees it: Redis wrote it to every subscriber
    # Each of the others now says something of its own; if `event` had reached it, it would
    # have come first (one server, one subscriber connection each, order kept).
    for bus, listener, n in ((other, listeners[2], 1), (other_db, listeners[3], 2)):
        own = {"type": "message", "conversation_id": 1000 + n}
        bus.publish(own)
        await listener.wait_for(own)
        assert listener.got == [own], f"{bus.channel} saw another deployment's events"
    assert listeners[0].got[0] == event and listeners[1].got[0] == event
    assert len({one.channel, other.channel, other_db.channel}) == 3
    assert one.channel == "supportbot:alpha:db12:events"
    assert other_db.channel == "supportbot:alpha:db13:events"
    for listener in listeners:
        await listener.close()


def test_default_prefix_follows_the_database(tmp_path: Path) -> None:
    pg = "postgresql://bot:secret@db1:5432/support_prod"
    assert redis_prefix(pg) == "supportbot:support_prod"
    # Replicas reach the same database under other hosts or credentials: same prefix.
    assert redis_prefix("postgresql+asyncpg://other@10.0.0.5/support_prod") == redis_prefix(pg)
    assert redis_prefix("postgresql://bot@db1/support_stage") == "supportbot:support_stage"
    assert redis_prefix(pg, "acme-prod") == "acme-prod"
    one = redis_prefix(f"sqlite:///{tmp_path / 'a' / 'bot.db'}")
    two = redis_prefix(f"sqlite+aiosqlite:///{tmp_path / 'b' / 'bot.db'}")
    assert one != two and one.startswith("supportbot:sqlite:bot-")


async def test_two_apps_on_different_databases_get_different_channels(tmp_path: Path) -> None:
    apps = [
        App(
            Settings(
                database_url=f"postgresql://postgres@127.0.0.1/{name}",
                content_dir=CONTENT,
                data_dir=tmp_path,
                handoff={"redis_url": REDIS_A},  # type: ignore[arg-type]
            )
        )
        for name in ("shop_one", "shop_two")
    ]
    try:
        channels = [app.bus.channel for app in apps if isinstance(app.bus, RedisBus)]
        assert channels == ["supportbot:shop_one:db12:events", "supportbot:shop_two:db12:events"]
        assert [app.redis_prefix for app in apps] == ["supportbot:shop_one", "supportbot:shop_two"]
    finally:
        for app in apps:
            await app.bus.close()
            await app.db.dispose()


def test_prefix_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTBOT_HANDOFF__REDIS_PREFIX", "acme-prod")
    assert load_settings().handoff.redis_prefix == "acme-prod"
    monkeypatch.setenv("SUPPORTBOT_HANDOFF__REDIS_PREFIX", "acme prod")
    with pytest.raises(ConfigError, match=r"^SUPPORTBOT_HANDOFF__REDIS_PREFIX: .*without spaces"):
        load_settings()
