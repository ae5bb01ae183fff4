"""NLU benchmark: the embedded engine vs a real Rasa 3.6 server (DIET) on the same held-out split.

Prints one table: accuracy, macro-F1, parse latency p50/p99 (embedded in-process, Rasa over
HTTP on 127.0.0.1), training time and resident memory; then, per engine, what the default
confidence threshold does on the split (answered directly, precision of those answers) and the
threshold the calibration recommends for that engine (`supportbot nlu evaluate` prints the table).

    .venv/bin/python bench/nlu.py                 # both engines (Rasa venv is built if missing)
    .venv/bin/python bench/nlu.py --embedded-only
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlu.data import load_training_data  # noqa: E402
from nlu.embedded import EmbeddedEngine, _lemma, fit  # noqa: E402
from nlu.evaluate import Report, evaluate  # noqa: E402
from supportbot.settings import NLUSettings  # noqa: E402

CONTENT = ROOT / "content"
HELD_OUT = CONTENT / "nlu_test" / "heldout.yml"

RSS_PROBE = """
import sys, warnings; warnings.simplefilter("ignore")
sys.path.insert(0, {root!r})
from pathlib import Path
from nlu.data import load_training_data
from nlu.embedded import EmbeddedEngine, fit
d = load_training_data([Path({nlu!r})])
e = EmbeddedEngine(fit(d.examples, d.regexes, "probe"))
for ex in d.examples[:200]:
    e.parse_sync(ex.text)
print(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
"""


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0])
        except (OSError, IndexError):
            pass
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def bench_embedded(held_out: list) -> dict[str, Any]:
    data = load_training_data([CONTENT / "nlu"])
    _lemma.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        engine = EmbeddedEngine(fit(data.examples, data.regexes, "bench"))
        train_s = time.perf_counter() - started
    report = await evaluate(engine.parse, held_out, engine="embedded")
    for ex in held_out:  # warm the lemma cache like a running bot
        engine.parse_sync(ex.text)
    latencies = []
    for _ in range(3):
        for ex in held_out:
            t0 = time.perf_counter()
            engine.parse_sync(ex.text)
            latencies.append((time.perf_counter() - t0) * 1000)
    probe = subprocess.run(
        [sys.executable, "-c", RSS_PROBE.format(root=str(ROOT), nlu=str(CONTENT / "nlu"))],
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "train_s": train_s,
        "rss_mb": int(probe.stdout.strip()) / 1024,
        "report": report,
    }


async def bench_rasa(held_out: list, retrain: bool) -> dict[str, Any]:
    from nlu import rasa_runtime
    from nlu.rasa_project import export_project
    from nlu.rasa_server import RasaServerEngine

    home = rasa_runtime.default_home()
    rasa_runtime.ensure_venv(home)
    with tempfile.TemporaryDirectory(prefix="supportbot-rasa-bench-") as tmp:
        project = export_project(CONTENT, Path(tmp) / "project")
        cached = rasa_runtime.model_path(home, project).exists() and not retrain
        if retrain:
            rasa_runtime.model_path(home, project).unlink(missing_ok=True)
        started = time.perf_counter()
        model = rasa_runtime.train(home, project, quiet=True)
        train_s = float("nan") if cached else time.perf_counter() - started
        token = secrets.token_hex(8)
        server = rasa_runtime.serve(home, model, token=token, project=project)
        engine = RasaServerEngine(server.url, token=token, timeout=10.0)
        try:
            report = await evaluate(engine.parse, held_out, engine="rasa")
            latencies = []
            for ex in held_out:
                t0 = time.perf_counter()
                await engine.parse(ex.text)
                latencies.append((time.perf_counter() - t0) * 1000)
            memory = rss_mb(server.process.pid)
        finally:
            await engine.close()
            server.stop()
    return {
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "train_s": train_s,
        "rss_mb": memory,
        "report": report,
    }


def _seconds(value: float) -> str:
    return "cached (--retrain measures it)" if value != value else f"{value:.1f} s"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedded-only", action="store_true")
    parser.add_argument(
        "--retrain", action="store_true", help="train Rasa afresh to measure it (~10 min here)"
    )
    args = parser.parse_args()
    held_out = load_training_data([HELD_OUT]).examples
    rows = {"embedded": await bench_embedded(held_out)}
    if not args.embedded_only:
        rows["rasa (DIET)"] = await bench_rasa(held_out, args.retrain)
    print(f"held-out: {len(held_out)} examples from {HELD_OUT.relative_to(ROOT)}")
    print("| engine | accuracy | macro-F1 | parse p50 | parse p99 | training | memory (RSS) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(
            f"| {name} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['p50']:.2f} ms | "
            f"{r['p99']:.2f} ms | {_seconds(r['train_s'])} | {r['rss_mb']:.0f} MB |"
        )
    threshold = NLUSettings().threshold
    for name, r in rows.items():
        report: Report = r["report"]
        calibration = report.calibration()
        at = calibration.row(threshold)
        print(
            f"{name}: at the default threshold {threshold:.2f} {at.answered:.1%} answered directly, "
            f"{at.precision:.1%} of them right; calibrated threshold for this engine "
            f"{calibration.threshold:.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
