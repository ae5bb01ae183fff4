"""Live events reach every app process through Redis (and stay local without it); working hours
decide when operators are back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from handoff.events import LocalBus, RedisBus
from handoff.hours import Hours, HoursError

REDIS = "redis://127.0.0.1:6379/0"


async def first_event(bus: LocalBus) -> dict[str, object]:
    async for event in bus.subscribe():
        return event
    raise AssertionError("no event")


async def test_local_bus_fans_out_to_every_subscriber() -> None:
    bus = LocalBus()
    waiting = [asyncio.create_task(first_event(bus)) for _ in range(3)]
    await asyncio.sleep(0)
    bus.publish({"type": "queued", "conversation_id": 7})
    assert [await w for w in waiting] == [{"type": "queued", "conversation_id": 7}] * 3


async def test_redis_bus_delivers_one_process_events_to_another() -> None:
    one, two = RedisBus(REDIS, "supportbot:test"), RedisBus(REDIS, "supportbot:test")
    await one.start()
    await two.start()
    try:
        got = asyncio.create_task(first_event(two))
        await asyncio.sleep(0.1)
        one.publish({"type": "assigned", "conversation_id": 42, "operator_id": 3})
        assert await asyncio.wait_for(got, 5) == {
            "type": "assigned",
            "conversation_id": 42,
            "operator_id": 3,
        }
    finally:
        await one.close()
        await two.close()


async def test_redis_bus_without_redis_still_delivers_locally() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", "supportbot:test")  # nothing listens there
    start = asyncio.create_task(bus.start())
    await asyncio.sleep(0.1)
    got = asyncio.create_task(first_event(bus))
    await asyncio.sleep(0)
    bus.publish({"type": "message", "conversation_id": 1})
    assert await asyncio.wait_for(got, 2) == {"type": "message", "conversation_id": 1}
    start.cancel()
    await bus.close()


@pytest.mark.parametrize(
    ("spec", "at", "open_", "returns"),
    [
        ("mon-fri 09:00-18:00", datetime(2026, 11, 23, 7, 0, tzinfo=UTC), True, "сегодня в 10:00"),
        ("mon-fri 09:00-18:00", datetime(2026, 11, 23, 5, 0, tzinfo=UTC), False, "сегодня в 09:00"),
        ("mon-fri 09:00-18:00", datetime(2026, 11, 23, 16, 0, tzinfo=UTC), False, "завтра в 09:00"),
        ("mon-fri 09:00-18:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC), False, "в пн в 09:00"),
        ("mon-fri 09:00-18:00, sat 10:00-16:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC), True, "сегодня в 13:00"),
        ("mon-sun 00:00-24:00", datetime(2026, 11, 22, 23, 30, tzinfo=UTC), True, "сегодня в 02:30"),
        ("", datetime(2026, 11, 22, 1, 0, tzinfo=UTC), True, "сегодня в 04:00"),
    ],
)  # fmt: skip
def test_working_hours(spec: str, at: datetime, open_: bool, returns: str) -> None:
    hours = Hours.parse(spec, "Europe/Moscow")
    assert hours.is_open(at) is open_
    assert hours.describe_return(at) == returns


@pytest.mark.parametrize(
    ("spec", "at", "today"),
    [
        ("mon-fri 09:00-18:00", datetime(2026, 11, 23, 7, 0, tzinfo=UTC), "сегодня до 18:00"),
        ("mon-fri 09:00-18:00, sat 10:00-16:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC), "сегодня до 16:00"),
        ("mon-sun 08:00-24:00", datetime(2026, 11, 22, 19, 0, tzinfo=UTC), "сегодня до полуночи"),
        ("mon-sun 00:00-24:00", datetime(2026, 11, 22, 23, 30, tzinfo=UTC), "круглосуточно"),
        ("", datetime(2026, 11, 22, 1, 0, tzinfo=UTC), "круглосуточно"),
        ("mon-fri 09:00-18:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC), "снова в пн в 09:00"),
    ],
)  # fmt: skip
def test_the_line_s_hours_today_for_a_waiting_subscriber(
    spec: str, at: datetime, today: str
) -> None:
    assert Hours.parse(spec, "Europe/Moscow").describe_today(at) == today


@pytest.mark.parametrize("spec", ["weekdays 9-18", "mon-fri 18:00-09:00", "xyz 09:00-10:00"])
def test_bad_working_hours_are_refused_with_the_setting(spec: str) -> None:
    with pytest.raises(HoursError, match="working hours"):
        Hours.parse(spec)
