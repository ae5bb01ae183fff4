"""Personal data of a subscriber, for admins (152-ФЗ): find a person, download everything kept
about them, erase it. The work is services/privacy/; this module parses the forms and records
who did it in the audit log (operator id and IP).

Routes (role `admin` only; others get the 403 page):
- `GET /privacy?q=...`: the search form and, when one person matches, what is kept about them
  (names, masked phone and account, channels, counts); the lookup is audited (`subject_looked_up`);
- `POST /privacy/export` (form: `csrf`, `id`): the JSON export as a download, audited
  (`subject_exported`);
- `POST /privacy/erase` (form: `csrf`, `id`, `confirm` = the same id typed again): the erasure
  (services/privacy/erase.py, audited as `subject_erased`), then back to the page, which shows
  what was removed.
Plain HTML forms: no script is needed, the CSRF token travels as a form field, and the browser
checks the confirmation's pattern before the server checks it again.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.console.security import Me, me
from handoff.console.state import Console, console
from services import audit
from services.privacy import (
    AmbiguousPerson,
    Person,
    PersonNotFound,
    erase_person,
    export_person,
    find_person,
    person_of,
    summarise,
)
from services.privacy.erase import ACTION as ERASED
from storage.models import AuditEntry, OperatorRole, utcnow

FOR_ADMINS = "Эта страница — для администраторов."
MAX_QUERY = 100
CHANNEL_LABELS = {"telegram": "Telegram", "vk": "ВКонтакте"}
# What the page lists after an erasure, in this order (the audit entry's counts).
ERASED_LABELS = (
    ("messages", "Сообщений обезличено"),
    ("conversations", "Обращений очищено"),
    ("conversations_closed", "Из них закрыто открытых"),
    ("accounts", "Аккаунтов в каналах стёрто"),
    ("outbox", "Записей очереди отправки очищено"),
    ("outbox_cancelled", "Неотправленных сообщений отменено"),
    ("uploads", "Файлов операторов удалено"),
    ("tickets", "Заявок очищено"),
    ("verifications", "Подтверждений личности очищено"),
    ("codes", "Кодов удалено"),
    ("incident_subscriptions", "Подписок на аварии удалено"),
)


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app (all of them pages: plain HTML forms)."""
    r.add_get("/privacy", page, name="privacy")
    r.add_post("/privacy/export", export, name="privacy-export")
    r.add_post("/privacy/erase", erase, name="privacy-erase")


def _admin(request: web.Request) -> Me | None:
    who = me(request)
    return who if who.role == OperatorRole.ADMIN else None


def _forbidden(state: Console, request: web.Request) -> web.Response:
    return state.render(request, "error.html", status=403, message=FOR_ADMINS)


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = _admin(request)
    if who is None:
        return _forbidden(state, request)
    query = request.query.get("q", "").strip()[:MAX_QUERY]
    context: dict[str, Any] = {"q": query, "person": None, "error": None, "candidates": []}
    if query:
        async with state.db.session() as session:
            async with session.begin():
                try:
                    person = await find_person(session, query)
                except PersonNotFound:
                    context["error"] = f"Никого не нашли по запросу «{query}»."
                except AmbiguousPerson as exc:
                    context["error"] = "Под запрос подходят несколько человек — выберите одного:"
                    context["candidates"] = exc.candidates
                else:
                    context.update(await _person_view(state, session, person))
                    audit.record(
                        session,
                        "subject_looked_up",
                        actor="operator",
                        operator_id=who.id,
                        subscriber_id=person.primary,
                        details={"query_kind": _query_kind(query)},
                        ip=request.remote,
                    )
    return state.render(request, "privacy.html", **context)


def _query_kind(query: str) -> str:
    """What kind of query found the person (the audit keeps the kind, not the phone typed)."""
    head, sep, _rest = query.partition(":")
    if sep and head.strip().lower() in ("id", "phone", "account", "telegram", "vk"):
        return head.strip().lower()
    return "id" if query.startswith("#") else "digits" if query.isdigit() else "phone"


async def _person_view(state: Console, session: AsyncSession, person: Person) -> dict[str, Any]:
    summary = await summarise(session, person)
    erased: list[tuple[str, int]] = []
    if summary.erased_at is not None:
        entry = await session.scalar(
            select(AuditEntry)
            .where(AuditEntry.subscriber_id == person.primary, AuditEntry.action == ERASED)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(1)
        )
        details = entry.details if entry is not None else {}
        erased = [(label, int(details.get(key) or 0)) for key, label in ERASED_LABELS]
    tz = state.tz
    return {
        "person": summary,
        "channels": [
            {**c, "label": CHANNEL_LABELS.get(str(c["channel"]), str(c["channel"]))}
            for c in summary.channels
        ],
        "created_local": summary.created_at.astimezone(tz).strftime("%d.%m.%Y")
        if summary.created_at
        else "—",
        "erased_local": summary.erased_at.astimezone(tz).strftime("%d.%m.%Y %H:%M")
        if summary.erased_at
        else None,
        "erased_counts": erased,
    }


async def _person_from_form(request: web.Request) -> tuple[int, dict[str, str]]:
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    raw = form.get("id", "").strip()
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPBadRequest(text="id must be a subscriber id")
    return int(raw), form


async def export(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = _admin(request)
    if who is None:
        return _forbidden(state, request)
    sub_id, _form = await _person_from_form(request)
    async with state.db.session() as session:
        async with session.begin():
            try:
                person = await person_of(session, sub_id)
            except PersonNotFound:
                return state.render(
                    request, "error.html", status=404, message=f"Абонента №{sub_id} нет."
                )
            data = await export_person(session, person, uploads=state.uploads)
            audit.record(
                session,
                "subject_exported",
                actor="operator",
                operator_id=who.id,
                subscriber_id=person.primary,
                details={"subscriber_ids": list(person.subscriber_ids), "to": "console"},
                ip=request.remote,
            )
    name = f"subscriber-{person.primary}-{utcnow():%Y%m%d}.json"
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"),
        content_type="application/json",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def erase(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = _admin(request)
    if who is None:
        return _forbidden(state, request)
    sub_id, form = await _person_from_form(request)
    if form.get("confirm", "").strip() != str(sub_id):
        async with state.db.session() as session:
            try:
                view = await _person_view(state, session, await person_of(session, sub_id))
            except PersonNotFound:
                view = {"person": None}
        return state.render(
            request,
            "privacy.html",
            status=400,
            q=f"id:{sub_id}",
            error="Номер абонента в подтверждении не совпал — ничего не стёрто.",
            candidates=[],
            **view,
        )
    async with state.db.session() as session:
        async with session.begin():
            try:
                person = await person_of(session, sub_id)
            except PersonNotFound:
                return state.render(
                    request, "error.html", status=404, message=f"Абонента №{sub_id} нет."
                )
            await erase_person(
                session,
                person,
                uploads=state.uploads,
                actor="operator",
                operator_id=who.id,
                ip=request.remote,
            )
        state.db.after_commit(session)  # consoles hear that the person's open chats closed
    raise web.HTTPSeeOther(f"{state.prefix}/privacy?q=id:{person.primary}")
