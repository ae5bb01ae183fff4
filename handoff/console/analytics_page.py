"""Service analytics for supervisors: the page with charts, its JSON and the CSV export (figures
from handoff.analytics, definitions on the page).

Query parameters (all optional): `from`, `to` (ISO dates, both included; default the last 14
days in `handoff.timezone`), `channel` (telegram | vk | all), `group` (a skill group, `none` for
the bot's own work, or all). A bad value is a 400 naming the parameter.

On SQLite the report is computed on its own connection in a worker thread, so the event loop
(where SQLite statements otherwise run) stays free for the bots.

The charts are inline SVG drawn here on the server (no script, no library): the console's CSP
forbids inline styles, so shapes carry classes (static/analytics.css) and presentation
attributes only.
The CSV is for Excel as Russian offices have it: UTF-8 with a BOM, `;` between fields and a
decimal comma; one row per day x channel x group with every figure.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.engine import make_url

from handoff.analytics import NO_GROUP, Figures, Report, Resolution, Row, service_report
from handoff.console.security import me
from handoff.console.state import ApiError, Console, console
from handoff.console.views import CHANNELS
from storage.db import Database
from storage.models import utcnow

DEFAULT_DAYS = 14
MAX_DAYS = 366
NO_GROUP_LABEL = "без группы (бот)"
FOR_SUPERVISORS = "Эта страница — для супервизоров."


@dataclass(frozen=True, slots=True)
class Query:
    start: date
    end: date
    channel: str | None
    group: str | None

    def params(self) -> dict[str, str]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "channel": self.channel or "all",
            "group": self.group or "all",
        }


def parse_query(params: Mapping[str, str], *, today: date, groups: list[str]) -> Query:
    """The filters of a request; ApiError(400) names the parameter that is wrong."""

    def day(name: str, default: date) -> date:
        raw = (params.get(name) or "").strip()
        if not raw:
            return default
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ApiError(
                f"Параметр «{name}»: «{raw[:40]}» — не дата, нужен формат ГГГГ-ММ-ДД."
            ) from None

    end = day("to", today)
    start = day("from", end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise ApiError("Начало периода («from») позже его конца («to»).")
    if (end - start).days + 1 > MAX_DAYS:
        raise ApiError(f"Период — не больше {MAX_DAYS} дней.")
    channel = (params.get("channel") or "all").strip()
    if channel != "all" and channel not in CHANNELS:
        raise ApiError(f"Параметр «channel»: {', '.join(CHANNELS)} или all.")
    group = (params.get("group") or "all").strip()
    if group not in ("all", NO_GROUP, *groups):
        known = ", ".join([*groups, NO_GROUP, "all"])
        raise ApiError(f"Параметр «group»: нет группы «{group[:40]}» (есть: {known}).")
    return Query(
        start, end, None if channel == "all" else channel, None if group == "all" else group
    )


async def _report(state: Console, request: web.Request) -> tuple[Query, Report]:
    query = parse_query(
        request.query, today=utcnow().astimezone(state.tz).date(), groups=state.groups
    )
    handoff = state.settings.handoff

    async def compute(db: Database) -> Report:
        async with db.session() as session:
            return await service_report(
                session,
                start=query.start,
                end=query.end,
                timezone=handoff.timezone,
                first_response_target=handoff.first_response_target,
                channel=query.channel,
                group=query.group,
            )

    file = make_url(state.db.url).database if state.db.is_sqlite else None
    if file and file != ":memory:":
        # SQLite runs statements on the event loop (storage/sqlite_inline.py): right for the
        # bots' tiny statements, not for reading two weeks of messages. The report gets its own
        # connection in a worker thread (WAL: readers never block the writer), so both bots
        # keep answering while it is computed.
        return query, await asyncio.to_thread(in_worker_thread, state.db.url, compute)
    return query, await compute(state.db)


def in_worker_thread(url: str, compute: Callable[[Database], Awaitable[Report]]) -> Report:
    """Runs `compute` on a fresh connection to the database at `url`, on this thread's own
    event loop (call it through asyncio.to_thread)."""

    async def run() -> Report:
        db = Database(url)
        try:
            return await compute(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


# -- handlers -------------------------------------------------------------------------------------


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if not me(request).supervisor:
        return state.render(request, "error.html", status=403, message=FOR_SUPERVISORS)
    context: dict[str, Any] = {
        "channels": list(CHANNELS.items()),
        "groups": [*((g, g) for g in state.groups), (NO_GROUP, NO_GROUP_LABEL)],
        "group_label": group_label,
        "no_group_label": NO_GROUP_LABEL,
        "target": state.settings.handoff.first_response_target,
    }
    try:
        query, report = await _report(state, request)
    except ApiError as exc:
        form = {k: request.query.get(k, "") for k in ("from", "to", "channel", "group")}
        return state.render(
            request, "analytics.html", status=400, error=str(exc), form=form, report=None,
            **context,
        )  # fmt: skip
    return state.render(
        request,
        "analytics.html",
        error=None,
        form=query.params(),
        query=urlencode(query.params()),
        report=report,
        charts=charts(report),
        article_titles=_article_titles(state),
        **context,
    )


def _article_titles(state: Console) -> dict[str, str]:
    content = state.current_content
    return {a.id: a.title for a in content.articles.values()} if content is not None else {}


async def api_report(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if not me(request).supervisor:
        raise ApiError("supervisors only", 403)
    _, report = await _report(state, request)
    return web.json_response(report.to_json())


async def csv_export(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if not me(request).supervisor:
        return state.render(request, "error.html", status=403, message=FOR_SUPERVISORS)
    try:
        query, report = await _report(state, request)
    except ApiError as exc:
        return state.render(request, "error.html", status=400, message=str(exc))
    topics = request.query.get("table") == "topics"  # resolution by the bot per topic
    kind = "analytics_topics" if topics else "analytics"
    name = f"{kind}_{query.start.isoformat()}_{query.end.isoformat()}.csv"
    body = topics_csv(report.resolution) if topics else to_csv(report.rows)
    return web.Response(
        body=body.encode("utf-8-sig"),  # the BOM: Excel then reads UTF-8
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app (names: pages plain, JSON `api:*`)."""
    r.add_get("/analytics", page, name="analytics")
    r.add_get("/analytics.csv", csv_export, name="analytics-csv")
    r.add_get("/api/analytics", api_report, name="api:analytics")


def group_label(group: str | None) -> str:
    return NO_GROUP_LABEL if group is None else group


# -- CSV ----------------------------------------------------------------------------------------

COLUMNS: list[tuple[str, Callable[[Figures], float | int | None]]] = [
    ("Обращений", lambda f: f.contacts),
    ("Решено ботом", lambda f: f.contained),
    ("Передано оператору", lambda f: f.handed_off),
    ("Удержание, %", lambda f: f.containment_pct),
    ("Текстов боту", lambda f: f.bot_texts),
    ("Непонятых", lambda f: f.misses),
    ("Доля непонятых, %", lambda f: f.fallback_pct),
    ("Первых ответов", lambda f: f.first_responses),
    ("Своевременных", lambda f: f.timely),
    ("Своевременный первый ответ, %", lambda f: f.timely_pct),
    ("Средний первый ответ, с", lambda f: f.avg_first_response_s),
    ("Ждут без ответа", lambda f: f.waiting),
    ("Ушли без ответа", lambda f: f.abandoned),
    ("Среднее ожидание (все), с", lambda f: f.avg_wait_all_s),
    ("Ответов внутри диалога", lambda f: f.session_responses),
    ("Средний ответ внутри диалога, с", lambda f: f.avg_response_in_session_s),
    ("Назначений", lambda f: f.assigned),
    ("Пропущено", lambda f: f.missed),
    ("Пропущенные, %", lambda f: f.missed_pct),
    ("Оценок", lambda f: f.rated),
    ("CSAT, %", lambda f: f.csat_pct),
    ("Средняя оценка", lambda f: f.csat_avg),
    ("Ответов NPS", lambda f: f.nps_answers),
    ("Промоутеров", lambda f: f.promoters),
    ("Критиков", lambda f: f.detractors),
    ("NPS", lambda f: f.nps),
]
HEADER = ["День", "Канал", "Группа", *(name for name, _ in COLUMNS)]


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value).replace(".", ",")


def to_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(
            [
                row.day.isoformat(),
                row.channel,
                group_label(row.group),
                *(_number(get(row.figures)) for _, get in COLUMNS),
            ]
        )
    return out.getvalue()


TOPIC_HEADER = [
    "Тема (интент)",
    "Обращений",
    "Решено ботом",
    "Решено ботом, %",
    "Передано оператору",
    "Повторное обращение за 24 ч",
]


def topics_csv(resolution: list[Resolution]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(TOPIC_HEADER)
    for r in resolution:
        writer.writerow(
            [r.topic, r.contacts, r.resolved, _number(r.resolved_pct), r.handed_off, r.repeated]
        )
    return out.getvalue()


# -- charts (inline SVG geometry; templates/analytics.html draws it) ----------------------------

WIDTH = 560  # viewBox units: the charts sit two abreast, so text stays legible when scaled
LEFT, RIGHT, TOP, BOTTOM = 48, 44, 14, 34


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True, slots=True)
class Series:
    css: str
    name: str
    segments: list[str]  # polyline "x,y x,y" runs; a day without a value breaks the line
    dots: list[tuple[float, float, str]]  # x, y, title


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    series: list[Series]
    labels: list[Label]
    grid: list[float]  # y of horizontal lines from `left` to `right`
    empty: bool
    left: int = LEFT
    right: int = WIDTH - RIGHT


def _nice(top: float) -> int:
    """A round upper bound for an axis: 1, 2, 5 x 10^n."""
    if top <= 0:
        return 1
    base = 10 ** math.floor(math.log10(top))
    return int(next(m * base for m in (1, 2, 5, 10) if m * base >= top))


def _day_axis(days: list[date], height: int) -> tuple[float, list[Label]]:
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    every = max(1, math.ceil(len(days) / 10))
    labels = [
        Label(LEFT + slot * (i + 0.5), height - BOTTOM + 16, d.strftime("%d.%m"))
        for i, d in enumerate(days)
        if i % every == 0
    ]
    return slot, labels


def _percent_series(
    days: list[tuple[date, Figures]],
    slot: float,
    height: int,
    css: str,
    name: str,
    value: Callable[[Figures], float | None],
) -> Series:
    plot = height - TOP - BOTTOM
    segments: list[str] = []
    run: list[str] = []
    dots = []
    for i, (d, f) in enumerate(days):
        v = value(f)
        if v is None:
            if run:
                segments.append(" ".join(run))
            run = []
            continue
        x, y = LEFT + slot * (i + 0.5), TOP + plot * (1 - v / 100)
        run.append(f"{x:.1f},{y:.1f}")
        dots.append((round(x, 1), round(y, 1), f"{d:%d.%m}: {name} {v} %"))
    if run:
        segments.append(" ".join(run))
    return Series(css, name, segments, dots)


def contacts_chart(report: Report, height: int = 240) -> Chart:
    """Contacts per day: contained (bottom) and handed off (top) bars, the containment line."""
    days = report.by_day()
    slot, labels = _day_axis([d for d, _ in days], height)
    plot = height - TOP - BOTTOM
    top = _nice(max((f.contacts for _, f in days), default=0))
    bars = []
    for i, (d, f) in enumerate(days):
        width = max(slot * 0.7, 1.0)
        x = LEFT + slot * i + (slot - width) / 2
        title = (
            f"{d:%d.%m}: обращений {f.contacts}, решено ботом {f.contained}, "
            f"передано оператору {f.handed_off}"
        )
        base = float(TOP + plot)
        for count, css in ((f.contained, "bar-bot"), (f.handed_off, "bar-op")):
            h = plot * count / top
            if count:
                bars.append(
                    Bar(round(x, 1), round(base - h, 1), round(width, 1), round(h, 1), css, title)
                )
            base -= h
    ticks = (0, top // 2, top) if top % 2 == 0 else (0, top)
    labels += [Label(LEFT - 6, TOP + plot * (1 - n / top) + 4, str(n), "end") for n in ticks]
    labels += [
        Label(WIDTH - RIGHT + 6, TOP + plot * (1 - k / 2) + 4, f"{50 * k} %", "start")
        for k in range(3)
    ]
    line = _percent_series(
        days, slot, height, "line-containment", "удержание", lambda f: f.containment_pct
    )
    return Chart(
        WIDTH, height, bars, [line], labels, [TOP + plot * k / 2 for k in range(3)],
        empty=not any(f.contacts for _, f in days),
    )  # fmt: skip


def quality_chart(report: Report, height: int = 220) -> Chart:
    """Per day, 0-100 %: fallback rate, timely first response, CSAT."""
    days = report.by_day()
    slot, labels = _day_axis([d for d, _ in days], height)
    plot = height - TOP - BOTTOM
    series = [
        _percent_series(days, slot, height, "line-fallback", "непонятые", lambda f: f.fallback_pct),
        _percent_series(days, slot, height, "line-timely", "своевременный первый ответ", lambda f: f.timely_pct),
        _percent_series(days, slot, height, "line-csat", "CSAT", lambda f: f.csat_pct),
    ]  # fmt: skip
    labels += [
        Label(LEFT - 6, TOP + plot * (1 - k / 2) + 4, f"{50 * k} %", "end") for k in range(3)
    ]
    return Chart(
        WIDTH, height, [], series, labels, [TOP + plot * k / 2 for k in range(3)],
        empty=not any(s.dots for s in series),
    )  # fmt: skip


def ranking_chart(items: list[tuple[str, int, str]], css: str) -> Chart:
    """Horizontal bars: (label, count, tooltip) best first."""
    row, label_w = 24, 210
    height = TOP + row * len(items) + 6
    top = max((n for _, n, _ in items), default=1)
    span = WIDTH - label_w - 40
    bars, labels = [], []
    for i, (text, n, title) in enumerate(items):
        y = TOP + row * i
        w = max(span * n / top, 2.0)
        bars.append(Bar(label_w, y + 3, round(w, 1), row - 8, css, title))
        short = text if len(text) <= 30 else text[:29] + "…"
        labels.append(Label(label_w - 8, y + row / 2 + 3, short, "end"))
        labels.append(Label(label_w + w + 6, y + row / 2 + 3, str(n), "start"))
    return Chart(WIDTH, height, bars, [], labels, [], empty=not items)


def charts(report: Report) -> dict[str, Chart]:
    reasons = [(f"{r.reason} → {group_label(r.group)}", r.count) for r in report.handoff_reasons]
    return {
        "contacts": contacts_chart(report),
        "quality": quality_chart(report),
        "intents": ranking_chart(
            [(c.key, c.count, f"{c.key}: {c.count}") for c in report.top_intents], "bar-intent"
        ),
        "reasons": ranking_chart([(r, n, f"{r}: {n}") for r, n in reasons], "bar-reason"),
    }
