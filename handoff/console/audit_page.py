"""The audit log for admins: `/console/audit` (newest first, filters, pages) and
`/console/audit.csv` (the same filters, every matching row).

Admins only. Supervisors see every chat unmasked and are among the people the log watches; the
log itself holds personal data (who contacted us when, from which IP operators work). So the
people it watches don't read it, and nobody but admins can see who looked at whom.

Query parameters (all optional): `from`, `to` (ISO dates, both included, days in
`handoff.timezone`), `operator` (an operator id: entries by them *or* about their account),
`action` (an action code), `subscriber` (a subscriber id), `page` (1 = newest). A bad value is
a 400 naming the parameter.

The CSV is for Excel as Russian offices have it (like `/console/analytics.csv`): UTF-8 with a
BOM, `;` between fields, one row per entry, details as JSON. A cell that starts with `=`, `+`,
`-`, `@` or a tab gets a leading `'`, so a login someone typed can't become a formula. Every
export is itself an audit entry (`audit_exported`, with its filters).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.console.paging import paged
from handoff.console.security import Me, client_ip, me
from handoff.console.state import ApiError, console
from services import audit
from storage.models import AuditEntry, Operator, utcnow

PAGE_SIZE = 50
MAX_EXPORT = 100_000
FOR_ADMINS = "Журнал аудита — для администраторов."
ACTORS = {"operator": "оператор", "bot": "бот", "system": "система", "cli": "CLI"}
ACTIONS = {
    "login": "вход в консоль",
    "login_failed": "неудачный вход",
    "logout": "выход из консоли",
    "chat_opened": "открыл чат",
    "chat_taken": "взял чат",
    "reply_sent": "ответил абоненту",
    "chat_transferred": "передал чат",
    "chat_released": "вернул чат в очередь, уходя из сети",
    "note_added": "добавил заметку к чату",
    "returned_to_bot": "вернул чат боту",
    "chat_closed": "закрыл чат",
    "canned_added": "добавил заготовку",
    "operator_added": "учётная запись создана",
    "operator_changed": "учётная запись изменена",
    "operator_disabled": "учётная запись отключена",
    "operator_enabled": "учётная запись включена",
    "operator_removed": "учётная запись удалена",
    "password_reset": "пароль сброшен",
    "audit_exported": "выгрузка журнала аудита",
    "ticket_resolved": "решил заявку",
}
DETAILS = {
    "login": "логин",
    "reason": "причина",
    "rate_limited": "дальше — лимит попыток",
    "target_id": "учётная запись",
    "via": "где",
    "role": "роль",
    "unmasked": "видел полностью",
    "resolution": "итог",
    "to_group": "в группу",
    "to_operator": "оператору",
    "message_id": "сообщение",
    "image": "с картинкой",
    "sessions_ended": "завершено сессий",
    "chats_released": "чаты вернулись в очередь",
    "changes": "изменения",
    "groups": "группы",
    "max_chats": "мест",
    "name": "имя",
    "os_user": "пользователь ОС",
    "canned_id": "заготовка",
    "shortcut": "сокращение",
    "filters": "фильтры",
    "rows": "строк",
    "number": "номер",
    "channel": "канал",
}
VALUES = {
    "wrong_password": "неверный пароль или логин",
    "disabled": "учётная запись отключена",
    "page": "страница чата",
    "api": "API чата",
    "account": "счёт",
    "address": "адрес",
    True: "да",
    False: "нет",
}
CSV_HEADER = [
    "Время",
    "Кто",
    "ID оператора",
    "Оператор",
    "Действие",
    "Описание",
    "ID абонента",
    "ID чата",
    "IP",
    "Подробности",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class AuditQuery:
    start: date | None = None
    end: date | None = None
    operator_id: int | None = None
    action: str | None = None
    subscriber_id: int | None = None
    page: int = 1

    def params(self, *, page: int | None = None) -> dict[str, str]:
        """The filters as query parameters (empty ones left out)."""
        values = {
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "operator": str(self.operator_id or ""),
            "action": self.action or "",
            "subscriber": str(self.subscriber_id or ""),
        }
        if page is not None and page > 1:
            values["page"] = str(page)
        return {k: v for k, v in values.items() if v}

    def form(self) -> dict[str, str]:
        return {
            k: self.params().get(k, "") for k in ("from", "to", "operator", "action", "subscriber")
        }

    def statement(self, tz: tzinfo) -> Select[Any]:
        query = select(AuditEntry)
        if self.start is not None:
            query = query.where(AuditEntry.at >= _midnight(self.start, tz))
        if self.end is not None:
            query = query.where(AuditEntry.at < _midnight(self.end + timedelta(days=1), tz))
        if self.operator_id is not None:
            query = query.where(
                or_(
                    AuditEntry.operator_id == self.operator_id,
                    AuditEntry.details["target_id"].as_integer() == self.operator_id,
                )
            )
        if self.action:
            query = query.where(AuditEntry.action == self.action)
        if self.subscriber_id is not None:
            query = query.where(AuditEntry.subscriber_id == self.subscriber_id)
        return query


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def parse_query(params: Mapping[str, str]) -> AuditQuery:
    """The filters of a request; ApiError(400) names the parameter that is wrong."""

    def day(name: str) -> date | None:
        raw = (params.get(name) or "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ApiError(
                f"Параметр «{name}»: «{raw[:40]}» — не дата, нужен формат ГГГГ-ММ-ДД."
            ) from None

    def number(name: str, *, minimum: int = 1) -> int | None:
        raw = (params.get(name) or "").strip()
        if not raw:
            return None
        if not raw.isdigit() or len(raw) > 18 or int(raw) < minimum:
            raise ApiError(f"Параметр «{name}»: «{raw[:40]}» — нужно целое число от {minimum}.")
        return int(raw)

    start, end = day("from"), day("to")
    if start is not None and end is not None and start > end:
        raise ApiError("Начало периода («from») позже его конца («to»).")
    action = (params.get("action") or "").strip()
    if len(action) > 48:
        raise ApiError("Параметр «action»: слишком длинный.")
    return AuditQuery(
        start=start,
        end=end,
        operator_id=number("operator"),
        action=action or None,
        subscriber_id=number("subscriber"),
        page=number("page") or 1,
    )


# -- reading --------------------------------------------------------------------------------------


async def _operators(session: AsyncSession) -> dict[int, Operator]:
    return {op.id: op for op in (await session.scalars(select(Operator).order_by(Operator.login)))}


async def _actions(session: AsyncSession) -> list[tuple[str, str]]:
    """Every action code the filter offers: the known ones and any other in the log."""
    found = set(await session.scalars(select(AuditEntry.action).distinct()))
    codes = [*ACTIONS, *sorted(found - set(ACTIONS))]
    return [(code, ACTIONS.get(code, code)) for code in codes]


def _who(op_id: int | None, operators: Mapping[int, Operator]) -> str:
    if op_id is None:
        return ""
    op = operators.get(op_id)
    return f"{op.name} ({op.login})" if op is not None else f"#{op_id}"


def _value(key: str, value: Any, operators: Mapping[int, Operator]) -> str:
    if key in ("target_id", "to_operator") and isinstance(value, int):
        return _who(value, operators)
    if isinstance(value, bool):
        return VALUES[value]
    if isinstance(value, list):
        return ", ".join(_value(key, v, operators) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(
            f"{DETAILS.get(k, k)}: {_change(v) if key == 'changes' else _value(k, v, operators)}"
            for k, v in value.items()
        )
    return str(VALUES.get(value, value)) if isinstance(value, str) else str(value)


def _change(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2:
        old, new = (", ".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
        return f"{old} → {new}"
    return str(value)


def describe(details: Mapping[str, Any], operators: Mapping[int, Operator]) -> str:
    """Details for people: 'логин: anna; причина: неверный пароль или логин'."""
    return "; ".join(
        f"{DETAILS.get(key, key)}: {_value(key, value, operators)}"
        for key, value in details.items()
    )


def row(entry: AuditEntry, operators: Mapping[int, Operator], tz: tzinfo) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "time": entry.at.astimezone(tz).strftime("%d.%m.%Y %H:%M:%S"),
        "actor": entry.actor,
        "actor_label": ACTORS.get(entry.actor, entry.actor),
        "operator_id": entry.operator_id,
        "operator": _who(entry.operator_id, operators),
        "action": entry.action,
        "action_label": ACTIONS.get(entry.action, entry.action),
        "subscriber_id": entry.subscriber_id,
        "conversation_id": entry.conversation_id,
        "ip": entry.ip or "",
        "details": describe(entry.details or {}, operators),
    }


# -- handlers -------------------------------------------------------------------------------------


def _admin(request: web.Request) -> Me | None:
    who = me(request)
    return who if who.admin else None


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if _admin(request) is None:
        return state.render(request, "error.html", status=403, message=FOR_ADMINS)
    async with state.db.session() as session:
        operators = await _operators(session)
        actions = await _actions(session)
        context: dict[str, Any] = {
            "operators": sorted(operators.values(), key=lambda o: o.login),
            "actions": actions,
        }
        try:
            query = parse_query(request.query)
        except ApiError as exc:
            form = {
                k: request.query.get(k, "")
                for k in ("from", "to", "operator", "action", "subscriber")
            }
            return state.render(
                request, "audit.html", status=400, error=str(exc), form=form, rows=[],
                pager=None, csv_query="", **context,
            )  # fmt: skip
        filtered = query.statement(state.tz)
        entries, pager = await paged(
            session,
            filtered,
            (AuditEntry.at.desc(), AuditEntry.id.desc()),
            page=query.page,
            size=PAGE_SIZE,
            params=lambda n: query.params(page=n),
        )
    return state.render(
        request,
        "audit.html",
        error=None,
        form=query.form(),
        rows=[row(e, operators, state.tz) for e in entries],
        pager=pager,
        csv_query=urlencode(query.params()),
        **context,
    )


async def csv_export(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = _admin(request)
    if who is None:
        return state.render(request, "error.html", status=403, message=FOR_ADMINS)
    try:
        query = parse_query(request.query)
    except ApiError as exc:
        return state.render(request, "error.html", status=400, message=str(exc))
    async with state.db.session() as session:
        operators = await _operators(session)
        entries = (
            await session.scalars(
                query.statement(state.tz)
                .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                .limit(MAX_EXPORT)
            )
        ).all()
    body = to_csv(entries, operators, state.tz)
    async with state.db.transaction() as session:
        audit.record(
            session,
            "audit_exported",
            actor="operator",
            operator_id=who.id,
            ip=client_ip(request),
            details={"filters": query.params(), "rows": len(entries)},
        )
    stamp = utcnow().astimezone(state.tz).strftime("%Y-%m-%d_%H%M")
    return web.Response(
        body=body.encode("utf-8-sig"),  # the BOM: Excel then reads UTF-8
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit_{stamp}.csv"'},
    )


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(entries: Sequence[AuditEntry], operators: Mapping[int, Operator], tz: tzinfo) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for e in entries:
        op = operators.get(e.operator_id) if e.operator_id is not None else None
        writer.writerow(
            _cell(v)
            for v in (
                e.at.astimezone(tz).isoformat(timespec="seconds"),
                e.actor,
                e.operator_id,
                op.login if op is not None else "",
                e.action,
                ACTIONS.get(e.action, e.action),
                e.subscriber_id,
                e.conversation_id,
                e.ip,
                json.dumps(e.details or {}, ensure_ascii=False, sort_keys=True),
            )
        )
    return out.getvalue()


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/audit", page, name="audit")
    r.add_get("/audit.csv", csv_export, name="audit-csv")
