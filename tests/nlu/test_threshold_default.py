"""The default confidence threshold is the one the calibration recommends on the held-out set
(`supportbot nlu evaluate --test content/nlu_test/heldout.yml`), and the "did you mean" band the
calibration recommends is what the dialog engine does: buttons between the floor and the threshold. Training
is deterministic, so a data change that moves the recommendation fails here: re-run the command
and update `NLUSettings.threshold` and the README's NLU figures together."""

from __future__ import annotations

import asyncio

from nlu.calibration import DEFAULT_TARGET
from nlu.data import load_training_data
from nlu.embedded import EmbeddedEngine, train_or_load
from nlu.evaluate import evaluate
from supportbot.settings import NLUSettings
from tests.support import CONTENT


def test_the_default_threshold_is_the_calibrated_one() -> None:
    engine = EmbeddedEngine(train_or_load(load_training_data([CONTENT / "nlu"]), None))
    held_out = load_training_data([CONTENT / "nlu_test" / "heldout.yml"]).examples
    report = asyncio.run(evaluate(engine.parse, held_out, engine="embedded"))
    calibration = report.calibration(DEFAULT_TARGET)
    assert calibration.target_met
    assert calibration.threshold == NLUSettings().threshold
    assert calibration.band_floor == NLUSettings().suggest_floor  # buttons only in the band
    row = calibration.row(calibration.threshold)
    assert row.precision >= DEFAULT_TARGET and row.answered >= 0.90  # README: 91.4%, 97.9%
