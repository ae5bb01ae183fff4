"""kill -9 under load: nothing accepted is lost, at most the request on the wire per chat is
repeated, and no chat waits long after the app is back (bench/crash.py, small)."""

from __future__ import annotations

from pathlib import Path

from bench.crash import measure
from tests.conftest import PG_URL, fresh_postgres


async def test_kill_9_under_load_loses_nothing_and_recovers_within_30_s(tmp_path: Path) -> None:
    await (await fresh_postgres()).dispose()
    report = await measure(
        database_url=PG_URL, subscribers=20, every=2.0, kills=1, kill_every=8.0, workdir=tmp_path
    )
    summary = "\n".join(report.lines())
    assert report.sent >= 40, summary
    assert report.missing == 0, summary
    assert report.duplicates <= 20, summary  # at most the one request per chat on the wire
    assert report.worst_delay_after_recovery <= 30.0, summary
    assert not report.problems, summary
