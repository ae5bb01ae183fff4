"""`supportbot nlu ...`: parse a text, train, and evaluate the intent engines."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from nlu.data import TrainingDataError, load_training_data
from nlu.evaluate import cross_validate, evaluate
from supportbot.settings import ConfigError, Settings


def add_nlu_commands(sub: Any) -> None:
    nlu = sub.add_parser("nlu", help="parse, train and evaluate the intent engine")
    nlu_sub = nlu.add_subparsers(title="nlu commands", metavar="NLU_COMMAND")

    parse = nlu_sub.add_parser("parse", help="print the parse of TEXT as JSON")
    parse.add_argument("text", help="what a subscriber might write")
    parse.add_argument("--engine", choices=["embedded", "rasa"], help="default: settings")
    parse.set_defaults(func=_parse)

    train = nlu_sub.add_parser("train", help="train the embedded engine (cached by data hash)")
    train.set_defaults(func=_train)

    ev = nlu_sub.add_parser("evaluate", help="accuracy, macro-F1 and confusions on a test file")
    ev.add_argument("--test", type=Path, help="Rasa-format NLU file (e.g. content/nlu_test)")
    ev.add_argument("--engine", choices=["embedded", "rasa"], help="default: settings")
    ev.add_argument(
        "--cross-validation", type=int, metavar="K", help="K-fold CV on the training data instead"
    )
    ev.add_argument(
        "--report-dir", type=Path, default=Path("."), help="where intent_report.json goes"
    )
    ev.set_defaults(func=_evaluate)


def _settings_for(settings: Settings, engine: str | None) -> Settings:
    if engine is None:
        return settings
    return settings.model_copy(update={"nlu": settings.nlu.model_copy(update={"engine": engine})})


async def _parse(settings: Settings, args: argparse.Namespace) -> int:
    from supportbot.nlu_setup import build_engine

    engine = await build_engine(_settings_for(settings, args.engine))
    try:
        result = await engine.parse(args.text)
    finally:
        close = getattr(engine, "close", None)  # the Rasa client's HTTP session
        if close is not None:
            await close()
    print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    return 0


async def _train(settings: Settings, _args: argparse.Namespace) -> int:
    from supportbot.nlu_setup import build_engine, training_data

    data = training_data(settings)
    started = time.perf_counter()
    await build_engine(_settings_for(settings, "embedded"), data)
    print(
        f"trained on {len(data.examples)} examples, {len(data.intents)} intents "
        f"in {time.perf_counter() - started:.2f}s (model cached under {settings.data_dir / 'nlu-cache'})"
    )
    return 0


def _progress(label: str) -> Any:
    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{label} {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


async def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from supportbot.nlu_setup import build_engine, training_data

    if args.cross_validation:
        if args.cross_validation < 2:
            raise ConfigError("--cross-validation needs K >= 2")
        report = cross_validate(training_data(settings), args.cross_validation, _progress("fold"))
    else:
        if args.test is None:
            raise ConfigError("nlu evaluate needs --test FILE (or --cross-validation K)")
        try:
            test = load_training_data([args.test])
        except TrainingDataError as exc:
            raise ConfigError(str(exc)) from exc
        engine = await build_engine(_settings_for(settings, args.engine))
        report = await evaluate(engine.parse, test.examples, _progress("parsed"))
    report.print()
    path = report.write(args.report_dir)
    print(f"report written to {path}", file=sys.stderr)
    return 0
