"""The figures' model: what a report holds (per day x channel x group) and how the
percentages and means are derived; plus local calendar days in SQL. Definitions: __init__.py."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    case,
    func,
    literal,
)
from sqlalchemy.ext.asyncio import AsyncSession

NO_GROUP = "none"  # the group filter for what the bot did by itself
TOP = 10
MISS = "miss"
Cell = tuple[date, str, str | None]  # (day, channel, group)


def pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def mean(total: float, n: int, digits: int = 1) -> float | None:
    return round(total / n, digits) if n else None


@dataclass(slots=True)
class Figures:
    """Counts and sums of one cell (or a total); the rates are derived from them."""

    contacts: int = 0
    handed_off: int = 0
    bot_texts: int = 0
    misses: int = 0
    first_responses: int = 0
    timely: int = 0
    first_response_total_s: float = 0.0
    waiting: int = 0  # queue entries still unanswered (now)
    abandoned: int = 0  # queue entries that left before an operator's answer
    late_unanswered: int = 0  # of those two, the ones that waited longer than the target
    unanswered_wait_total_s: float = 0.0  # their waits: to leaving, or so far
    session_responses: int = 0
    session_response_total_s: float = 0.0
    assigned: int = 0
    missed: int = 0
    rated: int = 0
    csat_good: int = 0
    csat_total: int = 0
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0

    def add(self, other: Figures) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @classmethod
    def total(cls, parts: Iterable[Figures]) -> Figures:
        out = cls()
        for part in parts:
            out.add(part)
        return out

    @property
    def contained(self) -> int:
        return self.contacts - self.handed_off

    @property
    def containment_pct(self) -> float | None:
        return pct(self.contained, self.contacts)

    @property
    def fallback_pct(self) -> float | None:
        return pct(self.misses, self.bot_texts)

    @property
    def timely_pct(self) -> float | None:
        """Answered within the target, of the answered and the unanswered that waited longer."""
        return pct(self.timely, self.first_responses + self.late_unanswered)

    @property
    def queue_entries(self) -> int:
        """Queue entries counted: answered + still waiting + abandoned."""
        return self.first_responses + self.waiting + self.abandoned

    @property
    def answered_pct(self) -> float | None:
        return pct(self.first_responses, self.queue_entries)

    @property
    def avg_wait_all_s(self) -> float | None:
        """The mean wait of every entry: to the answer, to leaving, or so far."""
        total = self.first_response_total_s + self.unanswered_wait_total_s
        return mean(total, self.queue_entries)

    @property
    def avg_first_response_s(self) -> float | None:
        return mean(self.first_response_total_s, self.first_responses)

    @property
    def avg_response_in_session_s(self) -> float | None:
        return mean(self.session_response_total_s, self.session_responses)

    @property
    def missed_pct(self) -> float | None:
        return pct(self.missed, self.assigned)

    @property
    def csat_pct(self) -> float | None:
        return pct(self.csat_good, self.rated)

    @property
    def csat_avg(self) -> float | None:
        return mean(self.csat_total, self.rated, 2)

    @property
    def nps(self) -> float | None:
        return pct(self.promoters - self.detractors, self.nps_answers)

    def to_json(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts,
            "contained": self.contained,
            "handed_off": self.handed_off,
            "containment_pct": self.containment_pct,
            "bot_texts": self.bot_texts,
            "misses": self.misses,
            "fallback_pct": self.fallback_pct,
            "first_responses": self.first_responses,
            "timely": self.timely,
            "timely_first_response_pct": self.timely_pct,
            "answered": self.first_responses,
            "waiting": self.waiting,
            "abandoned": self.abandoned,
            "late_unanswered": self.late_unanswered,
            "answered_pct": self.answered_pct,
            "avg_wait_all_s": self.avg_wait_all_s,
            "avg_first_response_s": self.avg_first_response_s,
            "responses_in_session": self.session_responses,
            "avg_response_in_session_s": self.avg_response_in_session_s,
            "assigned": self.assigned,
            "missed": self.missed,
            "missed_pct": self.missed_pct,
            "rated": self.rated,
            "csat_pct": self.csat_pct,
            "csat_avg": self.csat_avg,
            "nps_answers": self.nps_answers,
            "promoters": self.promoters,
            "detractors": self.detractors,
            "nps": self.nps,
        }


@dataclass(frozen=True, slots=True)
class Row:
    day: date
    channel: str
    group: str | None  # None: the bot by itself
    figures: Figures

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "channel": self.channel,
            "group": self.group,
            **self.figures.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Count:
    key: str  # an intent, a normalised text
    count: int


@dataclass(frozen=True, slots=True)
class Reason:
    reason: str
    group: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days `first`..`last` and their UTC bounds [since, until)."""

    first: date
    last: date
    tz: ZoneInfo

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def since(self) -> datetime:
        return local_midnight(self.first, self.tz)

    @property
    def until(self) -> datetime:
        return local_midnight(self.last + timedelta(days=1), self.tz)

    def day_of(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()


@dataclass(frozen=True, slots=True)
class ArticleUse:
    """A knowledge-base article in the period: questions it answered, «👍» / «👎» presses."""

    article: str
    answers: int = 0
    helped: int = 0
    not_helped: int = 0

    @property
    def poor(self) -> bool:
        """More «не помогло» than «помогло»."""
        return self.not_helped > self.helped

    def to_json(self) -> dict[str, Any]:
        return {
            "article": self.article,
            "answers": self.answers,
            "helped": self.helped,
            "not_helped": self.not_helped,
        }


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    channel: str | None  # None: every channel
    group: str | None  # None: every group; NO_GROUP: the bot's own work
    first_response_target: float
    rows: list[Row]  # one per day x channel x group that had anything, in that order
    top_intents: list[Count]
    top_fallback_texts: list[Count]
    handoff_reasons: list[Reason]
    handoffs: int = 0  # "escalated" events behind handoff_reasons (the list is cut at TOP)
    # Resolution by the bot per topic (handoff/analytics/resolution.py): `Resolution` rows.
    resolution: list[Any] = field(default_factory=list)
    # Knowledge-base articles: the poorly rated first, then by answers (ArticleUse).
    articles: list[ArticleUse] = field(default_factory=list)
    totals: Figures = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "totals", Figures.total(r.figures for r in self.rows))

    def by_day(self) -> list[tuple[date, Figures]]:
        """Every day of the period (empty days too: the charts need them)."""
        out = {d: Figures() for d in self.period.days}
        for r in self.rows:
            out[r.day].add(r.figures)
        return list(out.items())

    def by_channel(self) -> list[tuple[str, Figures]]:
        out: dict[str, Figures] = defaultdict(Figures)
        for r in self.rows:
            out[r.channel].add(r.figures)
        return sorted(out.items())

    def by_group(self) -> list[tuple[str | None, Figures]]:
        out: dict[str | None, Figures] = defaultdict(Figures)
        for r in self.rows:
            out[r.group].add(r.figures)
        return sorted(out.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "period": {
                "from": self.period.first.isoformat(),
                "to": self.period.last.isoformat(),
                "timezone": self.period.tz.key,
                "since": self.period.since.isoformat(),
                "until": self.period.until.isoformat(),
            },
            "filters": {"channel": self.channel, "group": self.group},
            "first_response_target_s": self.first_response_target,
            "totals": self.totals.to_json(),
            "days": [{"day": d.isoformat(), **f.to_json()} for d, f in self.by_day()],
            "channels": [{"channel": c, **f.to_json()} for c, f in self.by_channel()],
            "groups": [{"group": g, **f.to_json()} for g, f in self.by_group()],
            "rows": [r.to_json() for r in self.rows],
            "top_intents": [{"intent": c.key, "count": c.count} for c in self.top_intents],
            "top_fallback_texts": [
                {"text": c.key, "count": c.count} for c in self.top_fallback_texts
            ],
            "handoff_reasons": [
                {"reason": r.reason, "group": r.group, "count": r.count}
                for r in self.handoff_reasons
            ],
            "handoffs": self.handoffs,
            "resolution_by_topic": [r.to_json() for r in self.resolution],
            "knowledge_articles": [a.to_json() for a in self.articles],
        }


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


# -- local days in SQL ---------------------------------------------------------------------------


def local_day(session: AsyncSession, column: Any, period: Period) -> Any:
    """The local calendar day of a UTC timestamp column, in SQL (a date on PostgreSQL, an ISO
    string on SQLite; `as_date` reads both). SQLite knows no time zones: a fixed offset when
    the zone has one all period long (Moscow always), else a CASE over the days' boundaries."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(period.tz.key, column))
    days = period.days
    bounds = [local_midnight(d, period.tz) for d in [*days, period.last + timedelta(days=1)]]
    offsets = {b.astimezone(period.tz).utcoffset() for b in bounds}
    if len(offsets) == 1:
        (offset,) = offsets
        assert offset is not None
        # Whole seconds first: SQLite rounds microseconds to milliseconds, so 23:59:59.9999
        # would land on the next day.
        seconds = int(offset.total_seconds())
        return func.date(func.substr(column, 1, 19), f"{seconds:+d} seconds")
    return case(
        *[(column < bounds[i + 1], literal(d.isoformat())) for i, d in enumerate(days)],
        else_=None,
    )


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
