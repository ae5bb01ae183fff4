"""Dialogs benchmark: how fast content loads and validates, what a flow turn costs, and how long an
editor's save takes to go live (the issue's target: within 2 s).

- load: `load_content` on content/ (read + check + compile every file), p50 over 16 runs that
  reuse the knowledge base's index (an edit to a dialog file) and over 4 that build it afresh;
- turns: the real pipeline (ConversationService + DialogEngine + embedded NLU + demo backend) on
  SQLite, N subscribers each running the tariff-change flow (give the number, type the SMS code,
  pick a tariff, confirm, thank: 6 turns), per-turn latency p50/p99 and turns/s. All subscribers
  share one demo number, so the per-number SMS limit is lifted for the bench (the limits
  themselves are tested in tests/test_verification.py);
- reload: `ReloadingContent.watch` (0.5 s poll) on a copy of content/; the time from writing an
  edited file to the new version being live, over 10 edits.

    .venv/bin/python bench/dialogs.py [--subscribers 1 20 200] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from dialogs.content import load_content  # noqa: E402
from dialogs.engine import DialogEngine  # noqa: E402
from dialogs.messages import Channel, Inbound  # noqa: E402
from dialogs.pipeline import ConversationService  # noqa: E402
from dialogs.reload import ReloadingContent  # noqa: E402
from dialogs.responses import StaticContent  # noqa: E402
from nlu.data import load_training_data  # noqa: E402
from nlu.embedded import EmbeddedEngine  # noqa: E402
from nlu.knowledge import _gate, build_index  # noqa: E402
from services.actions import flow_actions  # noqa: E402
from services.backend import BackendContext  # noqa: E402
from services.backend.demo import DemoBackend  # noqa: E402
from services.verification import Policy, Verifier  # noqa: E402
from storage import migrate  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import ChannelAccount  # noqa: E402

CONTENT = ROOT / "content"
CODE = "<the SMS code>"
FLOW = [
    ("хочу сменить тариф", None),
    ("8 911 000-00-06", None),
    (CODE, None),
    (None, "slot:tariff=m_online"),
    (None, "slot:confirm=no"),  # "no" keeps the demo subscriber's tariff for the next run
    ("спасибо", None),
]


class BenchBackend(DemoBackend):
    """The demo backend that also remembers each subscriber's last SMS code, so the bench can
    type it (the demo's SMS table is shared by every subscriber of the one number)."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[int, str] = {}

    async def send_code(self, ctx: BackendContext, phone: str, code: str) -> None:
        await super().send_code(ctx, phone, code)
        self.codes[ctx.subscriber_id] = code


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_load(intents: list[str]) -> None:
    times, first = [], []
    for i in range(20):
        if i % 5 == 0:  # the knowledge base indexed afresh: an article was edited
            build_index.cache_clear()
            _gate.cache_clear()
        started = time.perf_counter()
        content = load_content(CONTENT, intents, actions=flow_actions(DemoBackend()))
        (first if i % 5 == 0 else times).append(time.perf_counter() - started)
    print(
        f"load+validate content/: p50 {statistics.median(times) * 1000:.1f} ms "
        f"({len(content.flows)} flows, {len(content.responses)} responses, "
        f"{len(content.articles)} articles; the articles' index as built); with the index "
        f"built afresh (an article changed): p50 {statistics.median(first) * 1000:.0f} ms"
    )


async def bench_turns(subscribers: int, rounds: int, intents: list[str], tmp: Path) -> None:
    tmp.mkdir()
    db = Database(f"sqlite:///{tmp / 'bench.db'}")
    await migrate.upgrade(db)
    backend = BenchBackend()
    await backend.prepare(db)
    nlu = await EmbeddedEngine.train(load_training_data([CONTENT / "nlu"]), tmp / "nlu-cache")
    verifier = Verifier(backend, Policy(codes_per_hour=1_000_000))
    actions = flow_actions(backend, verifier=verifier)
    content = StaticContent(load_content(CONTENT, intents, actions=actions))
    engine = DialogEngine(content, actions, verifier=verifier)
    service = ConversationService(db, engine, engine=nlu)
    latencies: list[float] = []
    replies = confirmations = 0

    async def subscriber(n: int) -> None:
        nonlocal replies, confirmations
        for r in range(rounds):  # each round a new subscriber, so every run is a first contact
            user = f"{n}.{r}"
            for i, (text, payload) in enumerate(FLOW):
                if text == CODE:
                    text = backend.codes[await subscriber_id(user)]
                inbound = Inbound(
                    Channel.TELEGRAM, user, user, f"{user}-{i}", text=text, payload=payload
                )
                started = time.perf_counter()
                result = await service.handle(inbound)
                latencies.append(time.perf_counter() - started)
                replies += len(result.replies)
                if payload == "slot:tariff=m_online":
                    confirmations += any("Мой онлайн" in (m.text or "") for m in result.replies)

    async def subscriber_id(user: str) -> int:
        async with db.session() as s:
            found = await s.scalar(
                select(ChannelAccount.subscriber_id).where(
                    ChannelAccount.channel == Channel.TELEGRAM.value,
                    ChannelAccount.external_user_id == user,
                )
            )
        assert found is not None
        return found

    started = time.perf_counter()
    await asyncio.gather(*(subscriber(n) for n in range(subscribers)))
    elapsed = time.perf_counter() - started
    await db.dispose()
    turns = len(latencies)
    print(
        f"flow turns (SQLite, {subscribers} at once, {rounds} rounds x {len(FLOW)} turns): "
        f"{turns / elapsed:.0f} turns/s, per turn p50 {pct(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {pct(latencies, 0.99) * 1000:.1f} ms; {replies} replies"
    )
    assert replies >= turns, "every turn must answer"
    assert confirmations == subscribers * rounds, (
        "every subscriber must reach the tariff confirmation"
    )


async def bench_reload(intents: list[str], tmp: Path) -> None:
    content_dir = tmp / "content"
    shutil.copytree(CONTENT, content_dir, ignore=shutil.ignore_patterns("tests", "nlu_test"))
    holder = ReloadingContent(content_dir, lambda: intents, actions=flow_actions(DemoBackend()))
    watcher = asyncio.create_task(holder.watch(0.5))
    target = content_dir / "dialogs" / "service.yml"
    original = target.read_text(encoding="utf-8")
    mark = "Наши салоны связи в Пушкине"
    if mark not in original:
        raise SystemExit(f"bench/dialogs.py: {target.name} no longer says {mark!r}; pick a text")
    delays = []
    for i in range(10):
        await asyncio.sleep(random.uniform(0.1, 0.6))  # land anywhere in the poll cycle
        before = holder.current.fingerprint
        started = time.perf_counter()
        target.write_text(original.replace(mark, f"{mark} (правка {i + 1})"), "utf-8")
        while holder.current.fingerprint == before:
            if time.perf_counter() - started > 30:
                raise SystemExit("bench/dialogs.py: an edit was not live after 30 s")
            await asyncio.sleep(0.005)
        delays.append(time.perf_counter() - started)
    watcher.cancel()
    print(
        f"hot reload, save -> live (10 edits): p50 {statistics.median(delays) * 1000:.0f} ms, "
        f"max {max(delays) * 1000:.0f} ms (target: under 2 s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 20, 200])
    parser.add_argument("--rounds", type=int, default=10, help="flows each of them runs in turn")
    args = parser.parse_args()
    intents = load_training_data([CONTENT / "nlu"]).intents
    bench_load(intents)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.subscribers:
            await bench_turns(n, args.rounds, intents, Path(tmp) / f"s{n}")
        await bench_reload(intents, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
