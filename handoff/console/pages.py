"""The console's HTML pages: login/logout, the queue with my chats, one chat with its context, the
supervisor's figures, and the editor's note. Pages render the same dicts the JSON API returns
(handoff.console.views); the page JS keeps them live from there."""

from __future__ import annotations

import logging
import math
import time

from aiohttp import web

from handoff import auth
from handoff.console import auditing, canned, unread
from handoff.console.security import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    client_ip,
    current_operator,
    me,
    new_login_token,
    same_origin,
    set_cookie,
    tokens_match,
)
from handoff.console.state import Console, console
from handoff.console.stats import supervisor_view
from handoff.console.views import (
    STATUS_LABELS,
    Forbidden,
    NotFound,
    chat_view,
    queue_view,
)
from storage.db import note_event
from storage.models import OperatorStatus

log = logging.getLogger(__name__)
MAX_LOGIN = 64
MAX_PASSWORD = 1024
BUSY_RETRY = 2  # seconds a login refused by the busy hashing gate is asked to wait


def _login_page(
    state: Console, request: web.Request, *, error: str | None = None, status: int = 200
) -> web.Response:
    token = new_login_token()
    response = state.render(
        request, "login.html", status=status, error=error, login_token=token, field=CSRF_FIELD
    )
    set_cookie(response, LOGIN_COOKIE, token, path=state.prefix, secure=state.secure)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    state = console(request)
    if await current_operator(state.db, request) is not None:
        raise web.HTTPFound(f"{state.prefix}/")
    return _login_page(state, request)


async def login(request: web.Request) -> web.StreamResponse:
    state = console(request)
    form = await request.post()
    login_name = str(form.get("login") or "").strip()[:MAX_LOGIN]
    password = str(form.get("password") or "")[:MAX_PASSWORD]
    if auth.PASSWORDS.full:  # a login flood: turned away for next to nothing (no page rendered)
        _busy.add(login_name, client_ip(request))
        return _busy_page(state)
    if not same_origin(request) or not tokens_match(
        request.cookies.get(LOGIN_COOKIE), str(form.get(CSRF_FIELD) or "")
    ):
        return _login_page(
            state,
            request,
            error="Форма входа устарела — попробуйте ещё раз.",
            status=403,
        )
    ip = client_ip(request)
    wait = state.limiter.retry_after(login_name, ip)
    if wait is None and (login_wait := state.limiter.login_retry_after(login_name)) is not None:
        # many failures for this login from many addresses: hold back the addresses it never
        # logged in from, never the operator's own (handoff.console.security)
        if ip not in await auditing.known_addresses(state, login_name):
            wait = login_wait
    if wait is not None:
        _limited.add(login_name, ip)
        return _too_many(state, request, f"Подождите {round(wait)} с.", wait)
    try:
        # The operator is read, the connection let go, and only then the password hashed: a
        # login flood never holds database connections the subscribers' replies need.
        async with state.db.session() as session:
            candidate = await auth.find_for_login(session, login_name)
        await auth.check_password(candidate, password)
        assert candidate is not None  # check_password refuses an unknown login
        async with state.db.transaction() as session:
            done = await auth.open_session(session, candidate)
            auditing.logged_in(session, request, done.operator, state)
    except auth.Busy:
        _busy.add(login_name, ip)
        return _busy_page(state)
    except auth.AuthError as exc:
        disabled = isinstance(exc, auth.DisabledError)
        state.limiter.failed(login_name, ip)
        limited = state.limiter.reached(login_name, ip)
        log.info("console: failed login for %r from %s", login_name, ip)
        await auditing.login_failed(
            state,
            request,
            login_name,
            "disabled" if disabled else "wrong_password",
            limited=limited,
        )
        if disabled:
            return _login_page(
                state,
                request,
                error="Учётная запись отключена. Обратитесь к администратору консоли.",
                status=403,
            )
        return _login_page(state, request, error="Неверный логин или пароль.", status=401)
    state.limiter.succeeded(login_name, ip)
    response = _see_other(f"{state.prefix}/")
    set_cookie(
        response,
        SESSION_COOKIE,
        done.token,
        path=state.prefix,
        secure=state.secure,
        max_age=auth.SESSION_DAYS * 86400,
    )
    clear_cookie(response, LOGIN_COOKIE, path=state.prefix)
    return response


class _Refusals:
    """One warning per `every` seconds about logins refused unchecked (a flood would otherwise
    write a line per attempt): how many, why, and the latest."""

    def __init__(self, why: str, every: float = 10.0) -> None:
        self.why = why
        self.every = every
        self.since = -every
        self.count = 0

    def add(self, login_name: str, ip: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.since >= self.every:
            log.warning(
                "console: %d login(s) refused unchecked since the last such line: %s; "
                "latest %r from %s",
                self.count,
                self.why,
                login_name,
                ip,
            )
            self.since, self.count = now, 0


_limited = _Refusals("login limits reached")
_busy = _Refusals("password checks busy (a login flood?)")


def _too_many(state: Console, request: web.Request, wait_text: str, wait: float) -> web.Response:
    """429: too many login attempts (the limits) or too many at once (the hashing gate)."""
    response = _login_page(
        state, request, error=f"Слишком много попыток входа. {wait_text}", status=429
    )
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))  # never before it is over
    return response


def _busy_page(state: Console) -> web.Response:
    """429 while the password checks are busy: a small fixed page (a flood gets thousands)."""
    page = (
        '<!doctype html><html lang="ru"><meta charset="utf-8"><title>Вход</title>'
        "<p>Слишком много попыток входа. Попробуйте через несколько секунд. "
        f'<a href="{state.prefix}/login">Ко входу</a></p></html>'
    )
    return web.Response(
        text=page,
        status=429,
        content_type="text/html",
        charset="utf-8",
        headers={"Retry-After": str(BUSY_RETRY)},
    )


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session; an operator who leaves goes offline, so no chat is assigned to them, and
    the chats they still have go back to the queue for colleagues."""
    state = console(request)
    who = me(request)
    async with state.db.transaction() as session:
        await auth.log_out(session, who.token)
        auditing.logged_out(session, request, who)
        # open sockets of this session close at once (handoff.console.live)
        note_event(session, {"type": "session_ended", "operator_id": who.id})
    if not who.editor:  # and their chats go back to the queue: nobody would answer them
        await state.desk.set_status(who.id, OperatorStatus.OFFLINE, release=True)
    response = _see_other(f"{state.prefix}/login")
    clear_cookie(response, SESSION_COOKIE, path=state.prefix)
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _error_page(state: Console, request: web.Request, status: int, text: str) -> web.Response:
    return state.render(request, "error.html", status=status, message=text)


async def index(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if who.editor:
        return state.render(request, "editor.html")
    async with state.db.session() as session:
        data = await queue_view(session, who, state.tz)
    return state.render(request, "queue.html", data=data, statuses=STATUS_LABELS)


async def chat(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if who.editor:
        return _error_page(state, request, 403, "Редакторам чаты не видны.")
    try:
        async with state.db.session() as session:
            data = await chat_view(
                session,
                who,
                int(request.match_info["id"]),
                tz=state.tz,
                content=state.current_content,
                groups=state.groups,
                uploads=state.uploads,
                base=state.prefix,
            )
            replies = await canned.search(session, who)
        await auditing.chat_opened(state, request, who, data, via="page")
        await unread.mark_read(state.db, who.id, int(request.match_info["id"]))
    except NotFound:
        return _error_page(state, request, 404, "Такого чата нет.")
    except Forbidden:
        return _error_page(
            state, request, 403, "Это не ваш чат: его ведёт другой оператор или другая группа."
        )
    return state.render(request, "chat.html", data=data, canned=replies)


async def supervisor(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if not who.supervisor:
        return _error_page(state, request, 403, "Эта страница — для супервизоров.")
    async with state.db.session() as session:
        data = await supervisor_view(
            session,
            groups=state.groups,
            timezone=state.settings.handoff.timezone,
            first_response_target=state.settings.handoff.first_response_target,
        )
    return state.render(request, "supervisor.html", data=data, groups=state.groups)
