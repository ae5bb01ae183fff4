"""Choosing the confidence threshold and the "did you mean" band from evaluated messages.

The dialog engine answers an intent directly when its confidence is >= the threshold
(`SUPPORTBOT_NLU__THRESHOLD`); below it, it offers the top three intents as "did you mean"
buttons (never `NOT_OFFERED` ones) plus "something else". For each candidate threshold the table
gives, over the evaluated messages:

* answered  - share answered directly (confidence >= threshold);
* precision - share of those direct answers that are right;
* wrong     - share of all messages answered directly and wrongly (what a subscriber minds most);
* asked     - share that get the "did you mean" buttons instead;
* offered   - share of all messages that get buttons with the right intent among them;
* hit rate  - offered / asked: how often the buttons, when shown, hold the right intent
  (`out_of_scope`, `affirm` and `deny` are never buttons, so those messages count as misses).

The recommended threshold is the lowest candidate whose precision is >= the target (default
97%): the most direct answers while at most 3 in 100 of them are wrong. The band's floor is the
highest candidate below that threshold under which the buttons would contain the right intent
for fewer than half of the messages (buttons there mostly guess wrong; "not understood, say it
differently" is the better reply); 0 when the buttons help all the way down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

# The intents the dialog engine never offers as "did you mean" buttons (dialogs.runner.NO_SUGGEST;
# nlu/ cannot import dialogs/, a test keeps the two equal).
NOT_OFFERED = frozenset({"out_of_scope", "affirm", "deny", "greet", "goodbye", "thanks"})
BUTTONS = 3  # how many of the top intents become buttons
DEFAULT_TARGET = 0.97
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10, 0.15, ... 0.90
USEFUL_BUTTONS = 0.5  # below the band's floor the buttons are right for fewer than this share


@dataclass(frozen=True, slots=True)
class Scored:
    """One evaluated message: the right intent, the engine's top intent, its confidence and the
    ranking's first intents (best first)."""

    truth: str
    predicted: str
    confidence: float
    top: tuple[str, ...]

    def offered(self) -> tuple[str, ...]:
        """The "did you mean" buttons the dialog engine would show."""
        return tuple(i for i in self.top[:BUTTONS] if i not in NOT_OFFERED)


@dataclass(frozen=True, slots=True)
class Row:
    threshold: float
    answered: float
    precision: float
    wrong: float
    asked: float
    offered: float
    hit_rate: float


@dataclass(frozen=True, slots=True)
class Calibration:
    rows: tuple[Row, ...]
    target: float
    threshold: float  # recommended
    target_met: bool  # False: no candidate reached the target; `threshold` is the most precise
    band_floor: float  # "did you mean" buttons for confidences in [band_floor, threshold)
    below_floor_hit_rate: float  # how often buttons would be right under the floor
    messages: int

    def row(self, threshold: float) -> Row:
        return next(r for r in self.rows if abs(r.threshold - threshold) < 1e-9)

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "target_precision": self.target,
            "recommended_threshold": self.threshold,
            "target_met": self.target_met,
            "band": [self.band_floor, self.threshold],
            "below_band_hit_rate": self.below_floor_hit_rate,
            "rule": (
                f"threshold: the lowest candidate whose precision of direct answers is >= "
                f"{self.target:.0%}; band floor: the highest candidate under which the "
                f"'did you mean' buttons hold the right intent for < {USEFUL_BUTTONS:.0%}"
            ),
            "rows": [asdict(r) for r in self.rows],
        }

    def print(self, out: TextIO, current: float | None = None) -> None:
        print(
            f"\ncalibration ({self.messages} messages; 'did you mean' = the top {BUTTONS} "
            "intents as buttons):",
            file=out,
        )
        print("threshold  answered  precision   wrong   asked  offered right  hit rate", file=out)
        for r in self.rows:
            marks = []
            if abs(r.threshold - self.threshold) < 1e-9:
                marks.append("<- recommended")
            if current is not None and abs(r.threshold - current) < 1e-9:
                marks.append("<- current setting")
            precision = f"{r.precision:.1%}" if r.answered else "-"
            hit_rate = f"{r.hit_rate:.1%}" if r.asked else "-"
            print(
                f"{r.threshold:9.2f} {r.answered:9.1%} {precision:>10} {r.wrong:7.1%} "
                f"{r.asked:7.1%} {r.offered:14.1%} {hit_rate:>9}  {' '.join(marks)}".rstrip(),
                file=out,
            )
        best = self.row(self.threshold)
        if self.target_met:
            why = f"the lowest threshold whose direct answers are >= {self.target:.0%} right"
        else:
            why = f"no threshold reaches {self.target:.0%} precision; this one comes closest"
        print(
            f"recommended threshold {self.threshold:.2f} ({why}): {best.answered:.1%} answered "
            f"directly, {best.precision:.1%} of them right; {best.asked:.1%} asked back",
            file=out,
        )
        if self.band_floor > 0:
            band = (
                f"under {self.band_floor:.2f} the buttons would hold the right intent for only "
                f"{self.below_floor_hit_rate:.0%}"
            )
        else:
            band = f"the buttons hold the right intent for >= {USEFUL_BUTTONS:.0%} all the way down"
        print(
            f"recommended 'did you mean' band [{self.band_floor:.2f}, {self.threshold:.2f}) "
            f"({band})",
            file=out,
        )


def calibrate(
    scored: Sequence[Scored],
    *,
    target: float = DEFAULT_TARGET,
    thresholds: Iterable[float] = THRESHOLDS,
) -> Calibration:
    candidates = sorted(set(thresholds))
    rows = tuple(_row(scored, t) for t in candidates)
    meeting = [r for r in rows if r.answered > 0 and r.precision >= target]
    if meeting:
        chosen, met = meeting[0], True
    else:
        chosen, met = max(rows, key=lambda r: (r.precision, -r.threshold)), False
    floor, floor_rate = 0.0, 1.0
    for t in reversed([c for c in candidates if c < chosen.threshold]):
        rate = _hit_rate([s for s in scored if s.confidence < t])
        if rate < USEFUL_BUTTONS:
            floor, floor_rate = t, rate
            break
    return Calibration(
        rows=rows,
        target=target,
        threshold=chosen.threshold,
        target_met=met,
        band_floor=floor,
        below_floor_hit_rate=floor_rate,
        messages=len(scored),
    )


def _row(scored: Sequence[Scored], threshold: float) -> Row:
    n = len(scored) or 1
    answered = [s for s in scored if s.confidence >= threshold]
    asked = [s for s in scored if s.confidence < threshold]
    right = sum(s.predicted == s.truth for s in answered)
    offered = sum(s.truth in s.offered() for s in asked)
    return Row(
        threshold=threshold,
        answered=len(answered) / n,
        precision=right / len(answered) if answered else 0.0,
        wrong=(len(answered) - right) / n,
        asked=len(asked) / n,
        offered=offered / n,
        hit_rate=_hit_rate(asked),
    )


def _hit_rate(asked: Sequence[Scored]) -> float:
    """The share of `asked` whose buttons would hold the right intent (1.0 when none)."""
    return sum(s.truth in s.offered() for s in asked) / len(asked) if asked else 1.0
