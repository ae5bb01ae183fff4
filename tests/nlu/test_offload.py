"""The helper process that reads messages off the event loop (nlu/offload.py): it answers what
this process would, and when it is slow, stopped or killed, messages are still read (here) and
a dead helper comes back."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import warnings
from collections.abc import AsyncIterator

import pytest

from bench.ceiling import TEXTS
from nlu.data import load_training_data
from nlu.embedded import EmbeddedEngine, train_or_load
from nlu.knowledge import Doc, KnowledgeIndex
from nlu.offload import Offload
from supportbot.content_setup import configured_content
from supportbot.settings import Settings
from tests.support import CONTENT

QUESTIONS = [*TEXTS[::12], "как подключить антивирус", "роутер мигает красным", "ьлвоа ыва"]


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saga's convergence note
        return EmbeddedEngine(train_or_load(load_training_data([CONTENT / "nlu"]), None))


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    articles = configured_content(Settings(content_dir=CONTENT)).articles.values()
    return KnowledgeIndex(
        [Doc(a.id, a.title, a.questions, a.keywords, a.text.body) for a in articles]
    )


async def up(offload: Offload, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not offload.ready:
        assert time.monotonic() < deadline, "the helper did not start"
        await asyncio.sleep(0.05)


async def loaded(offload: Offload, obj: object, within: float = 30.0) -> None:
    """Until calls on `obj` go to the helper (it loads each object once, in the background)."""
    deadline = time.monotonic() + within
    while offload.submit(obj, "__len__") is None:
        assert time.monotonic() < deadline, "the helper did not load the object"
        await asyncio.sleep(0.05)


@pytest.fixture
async def offload() -> AsyncIterator[Offload]:
    helper = Offload(timeout=1.0)
    await helper.start()
    await up(helper)
    yield helper
    await helper.close()


def helper_pid(offload: Offload) -> int:
    assert offload._process is not None
    return offload._process.pid


async def read_here_then_by_a_new_helper(
    offload: Offload, engine: EmbeddedEngine, pid: int
) -> None:
    """The helper `pid` is noticed gone: a message is read here at once (no wait for a
    timeout), then a new helper starts and reads the next one."""
    deadline = time.monotonic() + 5
    while offload.ready:
        assert time.monotonic() < deadline, "the lost helper was not noticed"
        await asyncio.sleep(0.02)
    here, started = offload.stats["here"], time.monotonic()
    assert await offload.run(engine, "parse_sync", "баланс") == engine.parse_sync("баланс")
    assert offload.stats["here"] == here + 1 and time.monotonic() - started < 0.5
    await up(offload)
    assert helper_pid(offload) != pid and offload.stats["restarts"] == 1
    await loaded(offload, engine)
    there = offload.stats["there"]
    assert await offload.run(engine, "parse_sync", "тариф") == engine.parse_sync("тариф")
    assert offload.stats["there"] == there + 1


async def test_the_helper_answers_as_this_process_would(
    offload: Offload, engine: EmbeddedEngine, index: KnowledgeIndex
) -> None:
    await loaded(offload, index)
    await loaded(offload, engine)
    there = offload.stats["there"]
    for text in QUESTIONS:
        assert await offload.run(engine, "parse_sync", text) == engine.parse_sync(text)
        assert await offload.run(index, "search", text, 3) == index.search(text, 3)
    assert offload.stats["there"] - there == 2 * len(QUESTIONS)  # all of them computed there


async def test_a_method_that_raises_there_raises_here(
    offload: Offload, index: KnowledgeIndex
) -> None:
    await loaded(offload, index)
    here = offload.stats["here"]
    with pytest.raises(AttributeError):
        await offload.run(index, "search", None, 3)
    assert offload.stats["here"] == here + 1


async def test_a_hung_helper_costs_one_timeout_and_is_replaced(
    offload: Offload, engine: EmbeddedEngine
) -> None:
    await loaded(offload, engine)
    pid = helper_pid(offload)
    os.kill(pid, signal.SIGSTOP)  # hung: the calls on their way wait `timeout`, then run here
    started = time.monotonic()
    parses = await asyncio.gather(*(offload.run(engine, "parse_sync", t) for t in QUESTIONS))
    waited = time.monotonic() - started
    assert parses == [engine.parse_sync(t) for t in QUESTIONS]
    assert 0.9 <= waited < 3.0, waited
    # ...and the hung helper is killed, so the next messages do not wait: read here at once.
    await read_here_then_by_a_new_helper(offload, engine, pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_dead_helper_is_noticed_at_once_and_started_again(
    offload: Offload, engine: EmbeddedEngine
) -> None:
    await loaded(offload, engine)
    pid = helper_pid(offload)
    os.kill(pid, signal.SIGKILL)
    await read_here_then_by_a_new_helper(offload, engine, pid)


async def test_the_loop_is_free_while_the_helper_works(
    offload: Offload, index: KnowledgeIndex
) -> None:
    """A long message is searched there: a timer on the loop keeps its pace meanwhile."""
    await loaded(offload, index)
    long_text = " ".join(QUESTIONS) * 60  # ~20,000 characters
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    started = time.monotonic()
    hits = await offload.run(index, "search", long_text, 3)
    took = time.monotonic() - started
    ticker.cancel()
    assert hits == index.search(long_text, 3)
    during = [b - a for a, b in itertools.pairwise(ticks) if b > started]
    assert took > 0.05, took  # long enough for the loop to show a stall, had there been one
    assert max(during) < 0.05, (max(during), took)


async def test_a_stop_signal_to_the_group_leaves_the_helper_to_its_parent(
    offload: Offload, engine: EmbeddedEngine
) -> None:
    """Ctrl-C in a terminal signals the whole process group: the app stops its work first and
    then closes the helper, which meanwhile keeps answering (it used to die at once, and the
    app restarted it while stopping)."""
    await loaded(offload, engine)
    pid = helper_pid(offload)
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.3)
    there = offload.stats["there"]
    assert await offload.run(engine, "parse_sync", "баланс") == engine.parse_sync("баланс")
    assert offload.stats["there"] == there + 1 and offload.stats["restarts"] == 0
    assert helper_pid(offload) == pid


async def test_a_closed_offload_stops_its_helper(engine: EmbeddedEngine) -> None:
    helper = Offload()
    await helper.start()
    await up(helper)
    pid = helper_pid(helper)
    await helper.close()
    assert helper._process is not None and helper._process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert await helper.run(engine, "parse_sync", "баланс") == engine.parse_sync("баланс")
