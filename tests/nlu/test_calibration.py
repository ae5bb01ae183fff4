"""The calibration table and the recommended threshold/band, on hand-made evaluations."""

from __future__ import annotations

import io

import pytest

from dialogs.runner import NO_SUGGEST
from nlu.calibration import NOT_OFFERED, Scored, calibrate


def test_never_offered_intents_match_the_dialog_engine() -> None:
    assert NOT_OFFERED == NO_SUGGEST


def s(truth: str, predicted: str, confidence: float, *top: str) -> Scored:
    return Scored(truth, predicted, confidence, (predicted, *top))


# 10 messages: 6 confident and right, one confident and wrong at 0.55, three unsure ones.
SCORED = [
    *(s("balance", "balance", 0.9, "tariff_list") for _ in range(6)),
    s("balance", "promised_payment", 0.55, "balance"),
    s("roaming", "tariff_list", 0.35, "roaming", "balance"),  # right intent is a button
    s("offices", "complaint", 0.25, "operator", "balance"),  # buttons all wrong
    s("out_of_scope", "operator", 0.12, "out_of_scope"),  # never a button
]


def test_rows_count_answers_precision_and_useful_buttons() -> None:
    cal = calibrate(SCORED, thresholds=[0.3, 0.5, 0.6], target=0.95)
    r = cal.row(0.5)
    assert (r.answered, r.asked) == (0.7, 0.3)
    assert r.precision == pytest.approx(6 / 7) and r.wrong == pytest.approx(0.1)
    assert r.offered == pytest.approx(0.1) and r.hit_rate == pytest.approx(1 / 3)
    r = cal.row(0.6)
    assert (r.answered, r.precision, r.wrong) == (0.6, 1.0, 0.0)
    assert r.offered == pytest.approx(0.2) and r.hit_rate == pytest.approx(0.5)  # 0.55 helped


def test_recommends_the_lowest_threshold_reaching_the_target_and_the_band() -> None:
    cal = calibrate(SCORED, thresholds=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7], target=0.95)
    assert cal.threshold == 0.6 and cal.target_met
    # under 0.4 the buttons hold the right intent for 1 of 3 messages; under 0.5 for 1 of 3 too,
    # under 0.6: the 0.55 message gets its intent offered -> 2 of 4 = 50%, not below half.
    assert cal.band_floor == 0.5 and cal.below_floor_hit_rate == pytest.approx(1 / 3)
    out = io.StringIO()
    cal.print(out, current=0.4)
    text = out.getvalue()
    assert "0.60" in text and "<- recommended" in text and "<- current setting" in text
    assert "band [0.50, 0.60)" in text
    data = cal.to_json()
    assert data["recommended_threshold"] == 0.6 and data["band"] == [0.5, 0.6]


def test_an_unreachable_target_says_so() -> None:
    cal = calibrate(SCORED, thresholds=[0.1, 0.2], target=0.99)
    assert not cal.target_met and cal.threshold == 0.2  # the most precise, then the highest
    out = io.StringIO()
    cal.print(out)
    assert "no threshold reaches 99%" in out.getvalue()


def test_no_floor_when_buttons_help_all_the_way_down() -> None:
    helped = [s("roaming", "tariff_list", c, "roaming") for c in (0.1, 0.2, 0.3)]
    cal = calibrate([*SCORED[:6], *helped], thresholds=[0.15, 0.25, 0.5], target=0.95)
    assert cal.threshold == 0.5 and cal.band_floor == 0.0
