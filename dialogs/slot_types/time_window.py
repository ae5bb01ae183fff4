"""Visit windows (slot type time_window): a day and a time range from "завтра утром", "в пятницу
с 10 до 14", "25.11 после 18"..., and the next bookable windows offered as buttons."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dialogs.slot_types.normalise import norm

DAY_START = 8 * 60  # minutes: a visit window must lie within 08:00..22:00
DAY_END = 22 * 60
MIN_WINDOW = 60
MAX_DAYS_AHEAD = 14
DEFAULT_WINDOW = (9 * 60, 18 * 60)
OPTION_WINDOWS = ((9 * 60, 12 * 60), (12 * 60, 15 * 60), (15 * 60, 18 * 60), (18 * 60, 21 * 60))
MAX_OPTIONS = 6

_WEEKDAY_SHORT = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
_WEEKDAYS = tuple(
    re.compile(rf"\b(?:{p})\b")
    for p in (
        r"понедельник\w*|пн",
        r"вторник\w*|вт",
        r"сред[аеуы]|средой|ср",
        r"четверг\w*|чт",
        r"пятниц\w*|пт",
        r"суббот\w*|сб",
        r"воскресень\w*|воскресени\w*|вс",
    )
)
_RELATIVE_DAYS = ((re.compile(r"\bпослезавтра\b"), 2), (re.compile(r"\bзавтра\b"), 1))
_TODAY = re.compile(r"\bсегодня\b")
_MONTHS = (
    "январ",
    "феврал",
    "март",
    "апрел",
    "ма[йяе]",
    "июн",
    "июл",
    "август",
    "сентябр",
    "октябр",
    "ноябр",
    "декабр",
)
_DATE_WORDS = re.compile(
    r"(?<!\d)(\d{1,2})\s*("
    + "|".join(rf"{m}\w*" for m in _MONTHS)
    + r")(?:\s*(\d{4})(?:\s*г\w*)?)?"
)
_DATE_NUMERIC = re.compile(r"(?<![\d:.])(\d{1,2})[./](\d{1,2})(?:[./](\d{4}|\d{2}))?(?![\d:])")

_CLOCK = (
    r"(\d{1,2})(?:[:.](\d{2}))?(?:\s*(?:ч|час|часа|часов)\b\.?)?(?:\s*(утра|дня|вечера|ночи)\b)?"
)
_RANGE = re.compile(rf"(?:\b(?:с|со|от)\s*)?(?<!\d){_CLOCK}\s*(?:-|\bдо\b|\bпо\b)\s*{_CLOCK}")
_AFTER = re.compile(rf"(?:\bпосле|\bс|\bсо|\bот|\bне раньше)\s*(?<!\d){_CLOCK}")
_BEFORE = re.compile(rf"(?:\bдо|\bне позже|\bне позднее)\s*(?<!\d){_CLOCK}")
_AT = re.compile(rf"(?:\bв|\bк|\bоколо|\bпримерно в|\bна)\s*(?<!\d){_CLOCK}")
_BARE_CLOCK = re.compile(r"(?<![\d.:])(\d{1,2})[:.](\d{2})(?![\d.:])")

# part-of-day words, checked in order; None marks a part of day no visit can be booked in
_PARTS_OF_DAY: tuple[tuple[re.Pattern[str], tuple[int, int] | None, str], ...] = (
    (re.compile(r"\bперв\w* половин\w*"), (9 * 60, 13 * 60), "first_half"),
    (re.compile(r"\bвтор\w* половин\w*"), (13 * 60, 18 * 60), "second_half"),
    (re.compile(r"\bпосле обеда\b"), (14 * 60, 18 * 60), "afternoon"),
    (re.compile(r"\bутр(?:ом|о)\b|\bс утра\b|\bпоутру\b"), (9 * 60, 12 * 60), "morning"),
    (re.compile(r"\bдн[её]м\b|\bв обед\b|\bобед\b"), (12 * 60, 15 * 60), "day"),
    (re.compile(r"\bвечер(?:ом)?\b"), (18 * 60, 21 * 60), "evening"),
    (re.compile(r"\bноч(?:ью|ь)\b"), None, "night"),
)


class _Invalid(Exception):
    """The text names a day or a time, but not a bookable one."""


def _local_now(now: datetime, zone: ZoneInfo) -> datetime:
    return now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day_label(day: date, today: date) -> str:
    relative = {0: "сегодня", 1: "завтра", 2: "послезавтра"}.get((day - today).days)
    return relative or f"{_WEEKDAY_SHORT[day.weekday()]}, {day:%d.%m}"


def _window(day: date, start: int, end: int, today: date) -> dict[str, str]:
    return {
        "date": day.isoformat(),
        "from": _hhmm(start),
        "to": _hhmm(end),
        "label": f"{_day_label(day, today)}, {_hhmm(start)}–{_hhmm(end)}",
    }


def _blank(text: str, m: re.Match[str]) -> str:
    return text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]


def _make_date(day: int, month: int, year: int | None, today: date) -> date:
    try:
        if year is not None:
            return date(year + 2000 if year < 100 else year, month, day)
        found = date(today.year, month, day)
        if found < today:
            found = date(today.year + 1, month, day)
        return found
    except ValueError as exc:
        raise _Invalid from exc


def _take_days(text: str, today: date) -> tuple[str, set[date], set[int]]:
    """Dates named in the text (dates and сегодня/завтра) and weekdays; their words blanked."""
    dates: set[date] = set()
    weekdays: set[int] = set()
    for m in list(_DATE_WORDS.finditer(text)):
        month = next(i for i, p in enumerate(_MONTHS, 1) if re.match(p, m.group(2)))
        year = int(m.group(3)) if m.group(3) else None
        dates.add(_make_date(int(m.group(1)), month, year, today))
        text = _blank(text, m)
    for m in list(_DATE_NUMERIC.finditer(text)):
        day, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12 or not 1 <= day <= 31:
            continue  # "10.00", "9.30": a clock time, not a date
        dates.add(_make_date(day, month, int(m.group(3)) if m.group(3) else None, today))
        text = _blank(text, m)
    for pattern, offset in _RELATIVE_DAYS:
        for m in list(pattern.finditer(text)):
            dates.add(today + timedelta(days=offset))
            text = _blank(text, m)
    for m in list(_TODAY.finditer(text)):
        dates.add(today)
        text = _blank(text, m)
    for weekday, pattern in enumerate(_WEEKDAYS):
        for m in list(pattern.finditer(text)):
            weekdays.add(weekday)
            text = _blank(text, m)
    return text, dates, weekdays


def _clock(hour: str, minute: str | None, qualifier: str | None, part: str | None) -> int:
    """Minutes since midnight; "2 дня"/"7 вечера" are afternoon, as is "6" with "вечером"."""
    h, m = int(hour), int(minute or 0)
    if h > 24 or m > 59:
        raise _Invalid
    if qualifier in ("дня", "вечера") and h < 12:
        h += 12
    elif qualifier == "ночи" and 9 <= h < 12:
        h += 12
    elif qualifier is None and part == "evening" and h < 12:
        h += 12
    elif qualifier is None and 1 <= h <= 7:
        h += 12  # nobody books a visit at 3 a.m.: "после 6" is 18:00
    return h * 60 + m


def _take_time(text: str) -> tuple[str, tuple[int, int] | None]:
    """The time window named in the text, if any, and the text with it blanked."""
    parts: set[str] = set()
    part_window: tuple[int, int] | None = None
    for pattern, window, name in _PARTS_OF_DAY:
        for m in list(pattern.finditer(text)):
            if window is None:
                raise _Invalid
            if part_window is not None and part_window != window:
                raise _Invalid  # "утром или вечером"
            parts.add(name)
            part_window = window
            text = _blank(text, m)
    part = next(iter(parts)) if parts else None

    windows: list[tuple[int, int]] = []
    for m in list(_RANGE.finditer(text)):
        q1, q2 = m.group(3), m.group(6)
        h1, h2 = int(m.group(1)), int(m.group(4))
        if q1 is None and q2 is None and part != "evening" and 1 <= h1 <= 7 and h2 > 7:
            start = h1 * 60 + int(m.group(2) or 0)  # "с 7 до 10": early, not 19:00
        else:
            start = _clock(m.group(1), m.group(2), q1, part)
        end = _clock(m.group(4), m.group(5), q2, part)
        if end <= start and end + 12 * 60 <= 24 * 60 and q2 is None:
            end += 12 * 60  # "с 10 до 2"
        windows.append((start, end))
        text = _blank(text, m)
    simple: tuple[tuple[re.Pattern[str], Callable[[int], tuple[int, int]]], ...] = (
        (_AFTER, lambda t: (t, min(t + 180, DAY_END))),
        (_BEFORE, lambda t: (DEFAULT_WINDOW[0], t)),
        (_AT, lambda t: (t, min(t + 120, DAY_END))),
    )
    for pattern, build in simple:
        for m in list(pattern.finditer(text)):
            windows.append(build(_clock(m.group(1), m.group(2), m.group(3), part)))
            text = _blank(text, m)
    for m in list(_BARE_CLOCK.finditer(text)):
        t = _clock(m.group(1), m.group(2), None, part)
        windows.append((t, min(t + 120, DAY_END)))
        text = _blank(text, m)

    if len(set(windows)) > 1:
        raise _Invalid  # two different times
    if windows:
        return text, windows[0]
    return text, part_window


def _bookable(start_at: datetime, start: int, end: int, now: datetime) -> bool:
    return DAY_START <= start and end <= DAY_END and end - start >= MIN_WINDOW and start_at >= now


def parse_time_window(text: str, now: datetime, tz: str = "Europe/Moscow") -> dict[str, str] | None:
    """A visit window from "завтра утром", "в пятницу с 10 до 14", "25.11 после 18", "вечером"...

    Day alone -> 09:00-18:00 (today: from the next full hour); time alone -> today if the window
    is still ahead, else tomorrow; a weekday alone is the next such day, never today. Rejects
    windows that start in the past, lie outside 08:00-22:00, are under 1 h, or are more than
    14 days ahead; also contradictions ("завтра 25.11" on another day, "утром или вечером").
    """
    zone = ZoneInfo(tz)
    local = _local_now(now, zone)
    today = local.date()
    try:
        rest, dates, weekdays = _take_days(norm(text), today)
        rest, window = _take_time(rest)
    except _Invalid:
        return None
    if re.search(r"\d", rest):
        return None  # numbers we did not understand ("завтра 15"): better ask again
    if not dates and not weekdays and window is None:
        return None
    if len(dates) > 1 or len(weekdays) > 1:
        return None

    def start_at(day: date, minutes: int) -> datetime:
        return datetime.combine(day, time(minutes // 60, minutes % 60), zone)

    if dates:
        day = dates.pop()
        if weekdays and day.weekday() not in weekdays:
            return None  # "в пятницу 25.11" when 25.11 is not a Friday
    elif weekdays:
        day = today + timedelta(days=(weekdays.pop() - today.weekday() - 1) % 7 + 1)
    else:
        assert window is not None
        day = today if start_at(today, window[0]) >= local else today + timedelta(days=1)

    if window is None:
        start, end = DEFAULT_WINDOW
        if day == today:
            next_hour = (
                local.hour + (1 if (local.minute or local.second or local.microsecond) else 0)
            ) * 60
            start = max(start, next_hour)
    else:
        start, end = window
    if not 0 <= (day - today).days <= MAX_DAYS_AHEAD:
        return None
    if not _bookable(start_at(day, start), start, end, local):
        return None
    return _window(day, start, end, today)


def window_options(now: datetime, tz: str = "Europe/Moscow", days: int = 3) -> list[dict[str, str]]:
    """The next bookable windows for buttons (09-12, 12-15, 15-18, 18-21) on the next `days` days
    from tomorrow, and today's remaining ones if it is before 12:00 local; at most 6, earliest
    first. Each label parses back to the same window with `parse_time_window`."""
    zone = ZoneInfo(tz)
    local = _local_now(now, zone)
    today = local.date()
    candidates = [today] if local.hour < 12 else []
    candidates += [today + timedelta(days=n) for n in range(1, days + 1)]
    options: list[dict[str, str]] = []
    for day in candidates:
        for start, end in OPTION_WINDOWS:
            if datetime.combine(day, time(start // 60), zone) >= local:
                options.append(_window(day, start, end, today))
                if len(options) == MAX_OPTIONS:
                    return options
    return options
