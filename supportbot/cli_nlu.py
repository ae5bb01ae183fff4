"""`supportbot nlu ...`: parse a text, train, and evaluate the intent engines.

`--engine rasa` means the Rasa server and nothing else: when it is unreachable, not ready or has
no model, or fails part-way through an evaluation, the command ends with exit code 2 and one line
naming SUPPORTBOT_NLU__RASA_URL, never with answers from the embedded engine. Without `--engine`,
`nlu parse` answers like the running bot would (Rasa with the embedded failover when configured,
the parse's `engine` says which answered); `nlu evaluate` always measures one engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlu.calibration import DEFAULT_TARGET
from nlu.data import TrainingDataError, load_training_data
from nlu.rasa_server import RasaUnavailable
from nlu.types import IntentEngine
from supportbot.settings import ConfigError, Settings

if TYPE_CHECKING:  # nlu.evaluate brings sklearn.metrics: imported by `nlu evaluate` only
    from nlu.evaluate import Report


def add_nlu_commands(sub: Any) -> None:
    nlu = sub.add_parser("nlu", help="parse, train and evaluate the intent engine")
    nlu_sub = nlu.add_subparsers(title="nlu commands", metavar="NLU_COMMAND")

    parse = nlu_sub.add_parser("parse", help="print the parse of TEXT as JSON")
    parse.add_argument("text", help="what a subscriber might write")
    parse.add_argument(
        "--engine",
        choices=["embedded", "rasa"],
        help="default: settings (with Rasa's embedded failover); `rasa`: the Rasa server only",
    )
    parse.set_defaults(func=_parse)

    train = nlu_sub.add_parser("train", help="train the embedded engine (cached by data hash)")
    train.set_defaults(func=_train)

    ev = nlu_sub.add_parser(
        "evaluate",
        help="accuracy, macro-F1, confusions and the threshold calibration on a test file",
    )
    ev.add_argument("--test", type=Path, help="Rasa-format NLU file (e.g. content/nlu_test)")
    ev.add_argument(
        "--engine",
        choices=["embedded", "rasa"],
        help="default: settings; `rasa`: the Rasa server only (exit 2 if it is not usable)",
    )
    ev.add_argument(
        "--cross-validation",
        type=int,
        metavar="K",
        help="K-fold CV of the embedded engine on the training data instead",
    )
    ev.add_argument(
        "--target",
        type=float,
        default=DEFAULT_TARGET,
        metavar="P",
        help=f"precision of direct answers the recommended threshold must reach "
        f"(default {DEFAULT_TARGET})",
    )
    ev.add_argument(
        "--json", action="store_true", help="print intent_report.json's content instead of tables"
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
    from supportbot.nlu_setup import build_engine, rasa_only

    engine: IntentEngine
    if args.engine == "rasa":
        engine = await rasa_only(settings)
    else:
        engine = await build_engine(_settings_for(settings, args.engine))
    try:
        result = await engine.parse(args.text)
    except RasaUnavailable as exc:  # only the Rasa-only engine lets it through
        from supportbot.nlu_setup import rasa_problem

        raise ConfigError(rasa_problem(str(exc))) from None
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


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A `done/total` counter rewritten in place on a terminal; nothing when stderr is a file or
    a pipe (a log must not start the error line with "parsed 25/314")."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{label} {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


async def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from nlu.evaluate import MeasurementError, cross_validate, evaluate
    from supportbot.nlu_setup import build_engine, rasa_only, training_data

    if not 0 < args.target <= 1:
        raise ConfigError("--target is a precision between 0 and 1, e.g. 0.97")
    engine_name = args.engine or settings.nlu.engine
    report: Report
    if args.cross_validation:
        if args.cross_validation < 2:
            raise ConfigError("--cross-validation needs K >= 2")
        if engine_name == "rasa":
            raise ConfigError(
                "--cross-validation trains the embedded engine only (add --engine embedded); "
                "measure Rasa with --test FILE or `rasa test nlu --cross-validation` in the "
                "exported project"
            )
        report = cross_validate(training_data(settings), args.cross_validation, _progress("fold"))
    else:
        if args.test is None:
            raise ConfigError("nlu evaluate needs --test FILE (or --cross-validation K)")
        try:
            test = load_training_data([args.test])
        except TrainingDataError as exc:
            raise ConfigError(str(exc)) from exc
        engine: IntentEngine
        if engine_name == "rasa":
            engine = await rasa_only(settings)  # never the failover: it would measure ours
        else:
            engine = await build_engine(_settings_for(settings, "embedded"))
        try:
            report = await evaluate(
                engine.parse,
                test.examples,
                _progress("parsed"),
                engine=engine.name,
                method=f"test file {args.test}",
            )
        except MeasurementError as exc:
            if sys.stderr.isatty():
                print(file=sys.stderr)  # end the progress line
            if engine_name != "rasa":
                raise
            from supportbot.nlu_setup import rasa_problem

            what = f"Rasa failed {exc.done + 1} messages into the evaluation of {exc.total}"
            raise ConfigError(rasa_problem(exc.reason, what)) from None
        finally:
            close = getattr(engine, "close", None)
            if close is not None:
                await close()
    if args.json:
        print(json.dumps(report.to_json(args.target), ensure_ascii=False, indent=2))
    else:
        report.print(threshold=settings.nlu.threshold, target=args.target)
    path = report.write(args.report_dir, args.target)
    print(f"report written to {path}", file=sys.stderr)
    return 0
