"""What Prometheus scrapes from `/metrics`: updates and replies by channel, NLU latency, the
outbox backlog with its oldest row and failed rows, the operator queue with its longest wait,
all read from the running app; and while the database is down the scrape still answers at
once, saying `supportbot_database_up 0`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dialogs.messages import Channel
from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from storage.models import OutboxItem
from supportbot.metrics import SEND_OUTCOMES
from tests.conftest import PG_URL, fresh_postgres
from tests.e2e.conftest import telegram_settings, vk_settings
from tests.support import TcpProxy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> tuple[Samples, str, float]:
    """The samples of one scrape, its content type and how long it took."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
        content_type = resp.headers["Content-Type"]
    took = time.perf_counter() - started
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return samples, content_type, took


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def wait_for(check: Callable[[], Any], within: float = 15) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the metrics never showed it"
        await asyncio.sleep(0.1)


async def test_metrics_count_traffic_and_show_backlog_failures_and_queue(
    start_app: Callable[..., Any], telegram: TelegramEmulator, vk: VKEmulator
) -> None:
    await (await fresh_postgres()).dispose()  # a fresh schema (skips if no server)
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"),
        vk=vk_settings(vk, "longpoll"),
        database_url=PG_URL,
    )
    await vk.wait_listening()  # like VK, Long Poll only gets events published after it connected
    telegram.send_text(101, "привет")
    telegram.send_text(102, "как оплатить связь")
    vk.send_text(201, "привет")
    await telegram.wait_sent(101, 1)
    await telegram.wait_sent(102, 1)
    await vk.wait_sent(201, 1)
    # A permanent error (400) keeps user 103's reply as failed; a 429 with a long retry_after
    # then holds user 104's reply in the outbox; user 105 waits for an operator.
    telegram.fail("sendMessage", error_code=400, chat_id=103)
    telegram.send_text(103, "привет")
    await wait_for(lambda: failed_rows(app))
    telegram.fail("sendMessage", error_code=429, retry_after=60)
    telegram.send_text(104, "привет")
    vk.send_text(205, "позовите оператора")

    async def settled() -> bool:
        samples, _, _ = await scrape(app.url)
        held = value(samples, "supportbot_outbox_backlog", channel="telegram") or 0
        return held >= 1 and value(samples, "supportbot_handoff_queue_length", group="consult") == 1

    await wait_for(settled)
    await asyncio.sleep(1.1)  # the held reply and the waiting chat grow at least a second older
    samples, content_type, _ = await scrape(app.url)
    assert content_type.startswith("text/plain; version=0.0.4")

    assert value(samples, "supportbot_database_up") == 1
    assert value(samples, "supportbot_updates_total", channel="telegram", outcome="handled") == 4
    assert value(samples, "supportbot_updates_total", channel="vk", outcome="handled") == 2
    async with app.db.session() as s:
        rows = select(OutboxItem.channel, OutboxItem.status, func.count()).group_by(
            OutboxItem.channel, OutboxItem.status
        )
        by_status = {(c, st): n for c, st, n in (await s.execute(rows)).all()}
    queued = {ch: sum(n for (c, _), n in by_status.items() if c == ch) for ch in ("telegram", "vk")}
    assert value(samples, "supportbot_bot_replies_total", channel="telegram") == queued["telegram"]
    assert value(samples, "supportbot_bot_replies_total", channel="vk") == queued["vk"]
    assert value(samples, "supportbot_update_seconds_count", channel="telegram") == 4
    assert (value(samples, "supportbot_nlu_parse_seconds_count", engine="embedded") or 0) >= 6

    held = by_status.get(("telegram", "pending"), 0) + by_status.get(("telegram", "sending"), 0)
    assert held >= 1 and value(samples, "supportbot_outbox_backlog", channel="telegram") == held
    assert (value(samples, "supportbot_outbox_oldest_age_seconds", channel="telegram") or 0) >= 1
    assert value(samples, "supportbot_outbox_backlog", channel="vk") == 0
    assert value(samples, "supportbot_outbox_oldest_age_seconds", channel="vk") == 0
    failed = by_status[("telegram", "failed")]
    assert failed >= 1 and value(samples, "supportbot_outbox_failed", channel="telegram") == failed
    assert value(samples, "supportbot_outbox_failed", channel="vk") == 0
    assert value(samples, "supportbot_handoff_queue_length", group="consult") == 1
    assert (value(samples, "supportbot_handoff_oldest_wait_seconds", group="consult") or 0) >= 1
    assert value(samples, "supportbot_handoff_queue_length", group="tech") == 0

    # Sends by outcome mirror each outbox worker's own counter, where the worker keeps one
    # (delivery/worker.py: OutboxWorker.stats); every known outcome is shown, 0 until it happens.
    for channel, worker in app.workers.items():
        stats = getattr(worker, "stats", None)
        shown = {
            dict(labels)["outcome"]: n
            for (name, labels), n in samples.items()
            if name == "supportbot_sends_total" and dict(labels)["channel"] == channel
        }
        if stats is None:
            assert shown == {}
            continue
        assert shown == {**dict.fromkeys(SEND_OUTCOMES, 0), **stats}
        if channel == Channel.TELEGRAM:  # 101, 102 answered; 103 refused (400); 104 told to wait
            assert shown["sent"] >= 2 and shown["permanent"] >= 1 and shown["retry_after"] >= 1


async def failed_rows(app: Any) -> bool:
    async with app.db.session() as s:
        return bool(await s.scalar(select(func.count()).where(OutboxItem.status == "failed")))


async def test_the_scrape_answers_at_once_while_the_database_is_down(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    await (await fresh_postgres()).dispose()
    url = make_url(PG_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"),
        database_url=url.set(port=port).render_as_string(hide_password=False),
    )
    telegram.send_text(301, "привет")
    await telegram.wait_sent(301, 1)
    samples, _, _ = await scrape(app.url)
    assert value(samples, "supportbot_database_up") == 1

    await proxy.cut()  # the database stops: connections refused
    samples, _, took_refused = await scrape(app.url)
    assert took_refused < 1.0, f"the scrape took {took_refused:.2f} s"
    assert value(samples, "supportbot_database_up") == 0
    assert value(samples, "supportbot_outbox_backlog", channel="telegram") is None  # not a guess
    assert value(samples, "supportbot_updates_total", channel="telegram", outcome="handled") == 1

    # Worse: something listens on the database's address and never answers.
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _r, w: accepted.append(w), "127.0.0.1", port)
    try:
        for _ in range(3):  # a read still hanging from the last scrape does not add up
            samples, _, took_silent = await scrape(app.url)
            assert took_silent < 1.0, f"the scrape took {took_silent:.2f} s"
            assert value(samples, "supportbot_database_up") == 0
    finally:
        silent.close()
        for writer in accepted:  # else the app's other tasks wait out asyncpg's 60 s connect
            writer.transport.abort()
    print(f"\nscrape with the database refused: {took_refused * 1000:.0f} ms, silent: "
          f"{took_silent * 1000:.0f} ms")  # fmt: skip

    await proxy.start()  # back on the same address
    await wait_for(lambda: database_up(app.url))


async def database_up(url: str) -> bool:
    samples, _, _ = await scrape(url)
    return value(samples, "supportbot_database_up") == 1
