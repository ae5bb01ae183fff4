"""Working hours of a skill group: "mon-fri 09:00-18:00, sat 10:00-16:00" in the group's timezone.

`Hours.is_open(at)` says whether operators work at that moment; `Hours.next_open(at)` when they
are back (for "операторы вернутся в пн в 09:00"); `describe_today` says until when they work
today ("сегодня до 22:00", "круглосуточно"). An empty spec means around the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES_RU = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
_RANGE = re.compile(
    r"^(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?\s+(?P<h1>\d{1,2}):(?P<m1>\d{2})-(?P<h2>\d{1,2}):(?P<m2>\d{2})$"
)


class HoursError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Hours:
    spec: str
    tz: ZoneInfo
    windows: tuple[tuple[int, int, int], ...]  # (weekday, start minute, end minute)

    @classmethod
    def parse(cls, spec: str, tz: str = "Europe/Moscow") -> Hours:
        windows: list[tuple[int, int, int]] = []
        for part in [p.strip().lower() for p in spec.split(",") if p.strip()]:
            m = _RANGE.match(part)
            if m is None or m["d1"] not in DAYS or (m["d2"] and m["d2"] not in DAYS):
                raise HoursError(f"working hours {part!r}: expected like 'mon-fri 09:00-18:00'")
            start = int(m["h1"]) * 60 + int(m["m1"])
            end = int(m["h2"]) * 60 + int(m["m2"])
            if not 0 <= start < end <= 24 * 60:
                raise HoursError(f"working hours {part!r}: the end must be after the start")
            first = DAYS.index(m["d1"])
            last = DAYS.index(m["d2"]) if m["d2"] else first
            days = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
            windows += [(d, start, end) for d in days]
        return cls(spec, ZoneInfo(tz), tuple(sorted(windows)))

    def is_open(self, at: datetime) -> bool:
        if not self.windows:
            return True
        local = at.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        return any(d == local.weekday() and s <= minute < e for d, s, e in self.windows)

    def next_open(self, at: datetime) -> datetime:
        """The next moment (aware, in the group's timezone) operators work; `at` if open now."""
        if self.is_open(at):
            return at.astimezone(self.tz)
        local = at.astimezone(self.tz)
        for days_ahead in range(8):
            day = (local + timedelta(days=days_ahead)).date()
            for d, start, _end in self.windows:
                if d != day.weekday():
                    continue
                opens = datetime.combine(day, time(start // 60, start % 60), self.tz)
                if opens > local:
                    return opens
        return local  # unreachable with at least one window

    def describe_return(self, at: datetime) -> str:
        """'сегодня в 09:00', 'завтра в 09:00' or 'в пн в 09:00' (subscriber-facing)."""
        opens = self.next_open(at)
        local = at.astimezone(self.tz)
        days = (opens.date() - local.date()).days
        when = (
            "сегодня"
            if days == 0
            else "завтра"
            if days == 1
            else f"в {DAY_NAMES_RU[opens.weekday()]}"
        )
        return f"{when} в {opens:%H:%M}"

    def around_the_clock(self) -> bool:
        return not self.windows or all(
            any(d == day and s == 0 and e == 24 * 60 for d, s, e in self.windows)
            for day in range(7)
        )

    def describe_today(self, at: datetime) -> str:
        """When the line works, said to a subscriber at `at`: 'круглосуточно', 'сегодня до
        22:00' while open, else when it opens ('завтра в 08:00')."""
        if self.around_the_clock():
            return "круглосуточно"
        if not self.is_open(at):
            return f"снова {self.describe_return(at)}"
        local = at.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        end = max(e for d, s, e in self.windows if d == local.weekday() and s <= minute < e)
        return (
            "сегодня до полуночи"
            if end == 24 * 60
            else f"сегодня до {end // 60:02d}:{end % 60:02d}"
        )
