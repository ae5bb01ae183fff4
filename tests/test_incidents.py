"""Outage incidents (services/outages/) on SQLite and PostgreSQL: the area rule, detection by
threshold and window through the real pipeline, one incident across processes, declare/close and
the closing notice with opt-outs honoured."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.messages import Channel, Inbound, Outbound
from dialogs.pipeline import ConversationService
from services.backend import BackendContext
from services.backend.demo import DemoBackend
from services.outages import IncidentError, Incidents, Rules, area_for, parse_area
from storage import repo
from storage.db import Database
from storage.models import (
    Incident,
    IncidentStatus,
    IncidentSubscriber,
    OutageReport,
    OutboxItem,
    Subscriber,
    utcnow,
)
from tests.support import CONTENT, ROOT, content_source, dialog_engine, trained_nlu

STREET = "Лесная"
_updates = itertools.count(1)


@pytest.mark.parametrize(
    ("address", "key", "title"),
    [
        ("Октябрьский бульвар 20, кв 5", "октябрьский", "Октябрьский бульвар"),
        ("октябрьский б-р, 14", "октябрьский", "Октябрьский б-р"),
        ("Пушкин, Октябрьский бульвар, д. 20, кв. 14", "октябрьский", "Октябрьский бульвар"),
        ("б-р Октябрьский, д.20", "октябрьский", "б-р Октябрьский"),
        ("Садовая 12", "садовая", "Садовая"),
        ("ул. Садовая, 12", "садовая", "ул. Садовая"),
        ("Садовая, 12", "садовая", "Садовая"),
        ("Ёлочная ул., дом 3, корп. 2, кв. 7", "елочная", "Ёлочная ул."),
        ("1-я Советская ул., 5", "1-я советская", "1-я Советская ул."),
        ("Москва, Ленинский проспект, 32А", "ленинский", "Ленинский проспект"),
    ],
)
def test_an_address_becomes_its_street(address: str, key: str, title: str) -> None:
    area = parse_area(address)
    assert area is not None
    assert (area.key, area.title) == (key, title)


def test_an_address_without_a_street_has_no_area() -> None:
    assert parse_area("д. 12, кв. 5") is None
    assert parse_area("Пушкин, 12") is None


class DistrictBackend(DemoBackend):
    """An integrator's backend that groups addresses by its own district keys."""

    def area_of(self, address: str) -> str | None:
        return "district-7" if "лесная" in address.lower() else None


async def test_the_customer_area_wins_unless_they_give_another_address() -> None:
    customer = {"address": "Пушкин, Октябрьский бульвар, д. 20, кв. 14", "area": "okt-20"}
    home = await area_for(None, "Пушкин, Октябрьский бульвар, д. 20, кв. 14", customer)
    assert home is not None and (home.key, home.title) == ("okt-20", "Октябрьский бульвар")
    elsewhere = await area_for(None, "Садовая 3", customer)
    assert elsewhere is not None and elsewhere.key == "садовая"
    own = await area_for(DistrictBackend(), "Лесная 7", None)
    assert own is not None and (own.key, own.title) == ("district-7", "Лесная")


# -- through the pipeline ------------------------------------------------------------------


class Bot:
    """The real pipeline, NLU, dialog engine and demo backend, with an incident desk."""

    def __init__(self, db: Database, rules: Rules) -> None:
        self.db = db
        self.events: list[dict[str, object]] = []
        self.incidents = Incidents(rules, DemoBackend())
        self.engine = dialog_engine(self.incidents)
        db.on_commit(publish=self.events.append)
        self.service = ConversationService(db, self.engine)

    async def start(self) -> None:
        self.service.engine = await trained_nlu()

    async def say(self, user: str, body: str, channel: Channel = Channel.TELEGRAM) -> list[str]:
        return await self._turn(
            Inbound(channel, user, user, f"u{next(_updates)}", text=body, first_name="Ира")
        )

    async def press(self, user: str, payload: str) -> list[str]:
        return await self._turn(
            Inbound(Channel.TELEGRAM, user, user, f"u{next(_updates)}", payload=payload)
        )

    async def _turn(self, inbound: Inbound) -> list[str]:
        before = len(await self.sent(inbound.chat_id))
        await self.service.handle(inbound)
        return (await self.sent(inbound.chat_id))[before:]

    async def sent(self, chat: str) -> list[str]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(OutboxItem.body).where(OutboxItem.chat_id == chat).order_by(OutboxItem.id)
            )
            return [Outbound.from_json(body).text or "" for body in rows]

    async def report(self, user: str, address: str) -> list[str]:
        await self.say(user, "не работает интернет")
        return await self.say(user, address)


async def _bot(db: Database, threshold: int = 3) -> Bot:
    await DemoBackend().prepare(db)
    bot = Bot(db, Rules(threshold=threshold))
    await bot.start()
    return bot


async def _count(db: Database, model: type, *where: object) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_below_the_threshold_it_is_troubleshooting_as_usual(db: Database) -> None:
    bot = await _bot(db, threshold=3)
    assert any("Выключи роутер" in t for t in await bot.report("1", f"{STREET} 7, кв 1"))
    assert any("Выключи роутер" in t for t in await bot.report("2", f"ул. {STREET}, 9"))
    again = await bot.say("2", "опять пропал интернет")  # the same person: two, not three
    assert any("Выключи роутер" in t for t in again)
    assert await _count(db, Incident) == 0
    assert await _count(db, OutageReport) == 2
    assert not [e for e in bot.events if e.get("type") == "incident"]


async def test_the_threshold_opens_one_incident_and_newcomers_hear_it_first(db: Database) -> None:
    bot = await _bot(db, threshold=3)
    await bot.report("1", f"{STREET} 7, кв 1")
    await bot.report("2", f"{STREET} 9")
    third = await bot.report("3", f"ул. {STREET}, д. 11")
    assert any("сейчас авария" in t for t in third)  # the contact that crossed it is told at once
    [alert] = [e for e in bot.events if e.get("type") == "incident"]
    assert alert["incident"] == {
        "id": 1,
        "action": "opened",
        "area_title": "ул. Лесная",
        "source": "detected",
        "reports": 3,
    }
    newcomer = await bot.report("4", f"{STREET} 1")
    assert "авария" in newcomer[0] and "починим к" in newcomer[0]
    assert "Нет интернета у нескольких абонентов" in newcomer[0]
    assert not any("Выключи роутер" in t for t in newcomer)  # no troubleshooting at all
    async with db.session() as s:
        [incident] = (await s.scalars(select(Incident))).all()
        assert incident.status == IncidentStatus.OPEN and incident.reports == 4
        assert incident.eta is not None
        assert (
            timedelta(hours=3, minutes=59) < incident.eta - incident.opened_at <= timedelta(hours=4)
        )
    assert await _count(db, IncidentSubscriber, IncidentSubscriber.notify.is_(True)) == 4
    other = await bot.report("5", "Садовая 12")  # another street is not affected
    assert any("Выключи роутер" in t for t in other)


async def test_reports_older_than_the_window_do_not_count(db: Database) -> None:
    desk = Incidents(Rules(threshold=2, window=timedelta(minutes=15)))
    now = utcnow()
    async with db.session() as s, s.begin():
        subs = [await _subscriber(s, str(n)) for n in range(3)]

        async def report(who: tuple[int, int], at: datetime) -> dict[str, Any] | None:
            return await desk.check(
                _ctx(s, who), address="Лесная 1", customer=None, problem="tv_down", now=at
            )

        assert await report(subs[0], now - timedelta(minutes=20)) is None
        assert await report(subs[1], now) is None  # the first one is too old to make it two
        found = await report(subs[2], now)
    assert found is not None and found["area"] == "лесная" and found["notify"] is True
    assert found["reports"] == 2  # the old report stays out of it


async def _subscriber(session: AsyncSession, user: str) -> tuple[int, int]:
    """A subscriber with a conversation: (subscriber id, conversation id)."""
    account = await repo.get_or_create_account(
        session, channel="telegram", user_id=user, chat_id=user, first_name="Ира"
    )
    conversation, _new = await repo.open_conversation(session, account)
    return account.subscriber_id, conversation.id


def _ctx(session: AsyncSession, who: tuple[int, int]) -> BackendContext:
    return BackendContext(session, "telegram", *who)


async def test_after_a_close_only_new_reports_open_the_next_one(db: Database) -> None:
    desk = Incidents(Rules(threshold=2))
    content = content_source().current
    async with db.session() as s, s.begin():
        who = [await _subscriber(s, str(n)) for n in range(5)]

    async def report(person: tuple[int, int]) -> dict[str, Any] | None:
        async with db.session() as s, s.begin():
            return await desk.check(
                _ctx(s, person), address="Лесная 1", customer=None, problem="tv_down", now=utcnow()
            )

    assert await report(who[0]) is None
    first = await report(who[1])
    assert first is not None and "Не работает ТВ" in first["description"]
    async with db.session() as s, s.begin():
        await desk.close(
            s,
            first["incident"],
            content.responses["incident_closed"],
            resolution=None,
            operator_id=None,
            now=utcnow(),
        )
    assert await report(who[0]) is None  # reported before the close: counts again, as one
    second = await report(who[2])
    assert second is not None and second["incident"] != first["incident"]
    assert second["reports"] == 2


async def _check(session: AsyncSession, who: tuple[int, int], house: int) -> dict[str, Any] | None:
    return await DESK.check(
        _ctx(session, who),
        address=f"{STREET} {house}",
        customer=None,
        problem="internet_down",
        now=utcnow(),
    )


DESK = Incidents(Rules(threshold=3))


async def test_two_processes_crossing_the_threshold_open_one_incident(db: Database) -> None:
    """Two app processes (two connection pools) each see the threshold reached in their own
    transaction. On PostgreSQL they really overlap: the second waits at the partial unique
    index and then takes the first one's incident. SQLite has one writer: they take turns."""
    other = Database(db.url)
    try:
        async with db.session() as s, s.begin():
            subs = [await _subscriber(s, str(n)) for n in range(4)]
            await _check(s, subs[0], 1)
            await _check(s, subs[1], 2)
        async with db.session() as a, other.session() as b:
            await a.begin()
            first = await _check(a, subs[2], 3)  # 3 of 3 in this process: opens it
            assert first is not None
            if db.is_sqlite:
                await a.commit()
                await b.begin()
                second = await _check(b, subs[3], 4)
            else:
                await b.begin()
                racing = asyncio.create_task(_check(b, subs[3], 4))  # 3 of 3 here too
                await asyncio.sleep(0.3)
                assert not racing.done()  # waits for the first process at the unique index
                await a.commit()
                second = await racing
            await b.commit()
    finally:
        await other.dispose()
    assert second is not None and first["incident"] == second["incident"]
    assert await _count(db, Incident) == 1
    assert await _count(db, IncidentSubscriber) == 4  # the reporters of both processes


async def test_declare_close_tells_everyone_once_and_honours_opt_outs(db: Database) -> None:
    bot = await _bot(db, threshold=50)  # no detection here: a supervisor declares it
    content = content_source().current
    await bot.report("1", f"{STREET} 7")  # before the declaration: subscribed by it
    async with db.session() as s, s.begin():
        incident = await bot.incidents.declare(
            s,
            area=f"ул. {STREET}",
            description="Обрыв кабеля, бригада на месте",
            eta=utcnow() + timedelta(hours=2),
            operator_id=None,
            now=utcnow(),
        )
    async with db.session() as s, s.begin():
        with pytest.raises(IncidentError) as twice:
            await bot.incidents.declare(
                s,
                area=f"{STREET} 3",
                description="ещё раз",
                eta=None,
                operator_id=None,
                now=utcnow(),
            )
    assert twice.value.status == 409
    told = await bot.report("2", f"{STREET} 9")
    assert "Обрыв кабеля" in told[0] and "Как только починим — напишу" in told[0]
    assert await bot.report("3", f"{STREET} 11")  # subscribed too ...
    assert "не буду писать" in (await bot.press("3", "flow:incident_mute"))[0]  # ... then not
    await bot.report("4", f"{STREET} 13")
    assert "Больше не буду писать первым" in (await bot.say("4", "/stop"))[0]
    repeat = await bot.report("4", f"{STREET} 13")  # opted out: no promise, a way back in
    assert "напишу сюда" not in repeat[0]
    await bot.report("5", f"{STREET} 15")
    await bot.say("5", "отписаться")
    assert "Снова буду сообщать" in (await bot.say("5", "/notify"))[0]

    async with db.session() as s, s.begin():
        done = await bot.incidents.close(
            s,
            incident.id,
            content.responses["incident_closed"],
            resolution="Кабель заменили.",
            operator_id=None,
            now=utcnow(),
        )
    assert (done.told.queued, done.told.opted_out) == (3, 1)
    assert done.told.channels == frozenset({"telegram"})
    for user in ("1", "2", "5"):
        closing = [t for t in await bot.sent(user) if "устранили" in t]
        assert len(closing) == 1, user
        assert "«ул. Лесная»" in closing[0] and "Кабель заменили." in closing[0]
    for user in ("3", "4"):
        assert not [t for t in await bot.sent(user) if "устранили" in t], user
    async with db.session() as s, s.begin():
        with pytest.raises(IncidentError) as again:
            await bot.incidents.close(
                s,
                incident.id,
                content.responses["incident_closed"],
                resolution=None,
                operator_id=None,
                now=utcnow(),
            )
    assert again.value.status == 409
    async with db.session() as s:
        closed = await s.get(Incident, incident.id)
        assert closed is not None and closed.notified == 3 and closed.status == "closed"
        off = await s.scalar(select(Subscriber.notifications_off_at).where(Subscriber.id == 4))
        assert off is not None
    late = await bot.report("6", f"{STREET} 1")  # closed: troubleshooting again
    assert any("Выключи роутер" in t for t in late)
    assert "Эта авария уже устранена" in (await bot.press("2", "flow:incident_mute"))[0]


def test_the_cli_declares_lists_and_closes(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")},
        "PYTHONPATH": str(ROOT),
        "SUPPORTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SUPPORTBOT_CONTENT_DIR": str(CONTENT),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "supportbot", "incidents", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    made = cli("declare", "Октябрьский бульвар 20", "Обрыв кабеля", "--eta-hours", "2")
    assert made.returncode == 0, made.stderr
    assert "incident 1 open: Октябрьский бульвар [октябрьский]" in made.stdout
    again = cli("declare", "октябрьский б-р, 14", "ещё раз")
    assert again.returncode == 2 and "incident 1 is already open" in again.stderr
    assert "Traceback" not in again.stderr
    listed = cli("list")
    assert "\tdeclared\tОктябрьский бульвар [октябрьский]" in listed.stdout
    closed = cli("close", "1", "Починили")
    assert closed.returncode == 0 and "incident 1 closed; queued 0 messages" in closed.stdout
    assert cli("list").stdout.strip() == "no open incidents"
    twice = cli("close", "1")
    assert twice.returncode == 2 and "already closed" in twice.stderr
