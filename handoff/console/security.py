"""Who is asking and may they: console sessions from the cookie, CSRF checks, login rate limits,
route classes (public / page / API) and the hardening headers every console response carries.

- Session: the `sb_console` cookie (HttpOnly, SameSite=Strict, Path=/console, Secure when
  `handoff.secure_cookies`) holds a random token; `handoff.auth` keeps only its hash.
- CSRF: every POST after login must carry the session's CSRF token, in the `X-CSRF-Token` header
  (the page JS; the token is in a `<meta>` tag) or in a `csrf` form field (plain HTML forms).
  The login form has no session yet: it is protected by a double-submit token (a random value
  in the `sb_console_login` cookie, SameSite=Strict, that the form must echo) plus an Origin
  check when the browser sends one. Both keep a foreign site from logging a victim into the
  attacker's account (login CSRF).
- Rate limit: at most `LOGIN_ATTEMPTS` failed logins per (login, client IP) per minute, then
  429 until the window passes, even with the right password.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from handoff import auth
from storage.db import Database
from storage.models import OperatorRole

SESSION_COOKIE = "sb_console"
LOGIN_COOKIE = "sb_console_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = 60.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HARDENING = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
# Where the guard leaves the operator on the request (a typed key where aiohttp has them).
_ME: Any = web.RequestKey("console_me", object) if hasattr(web, "RequestKey") else "console.me"
RouteKind = Literal["public", "page", "api"]


@dataclass(frozen=True, slots=True)
class Me:
    """The logged-in operator of a request (a snapshot: no database object outlives a session)."""

    id: int
    login: str
    name: str
    role: str
    groups: tuple[str, ...]
    max_chats: int
    status: str
    csrf: str
    token: str

    @property
    def supervisor(self) -> bool:
        return self.role in (OperatorRole.SUPERVISOR, OperatorRole.ADMIN)

    @property
    def editor(self) -> bool:
        return self.role == OperatorRole.EDITOR

    @property
    def admin(self) -> bool:
        return self.role == OperatorRole.ADMIN


def me(request: web.Request) -> Me:
    found = maybe_me(request)
    if found is None:  # only routes behind the guard call this
        raise web.HTTPUnauthorized()
    return found


def maybe_me(request: web.Request) -> Me | None:
    found = request.get(_ME)
    return found if isinstance(found, Me) else None


async def current_operator(db: Database, request: web.Request) -> Me | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await operator_for_token(db, token)


async def operator_for_token(db: Database, token: str) -> Me | None:
    async with db.session() as session:
        found = await auth.session_for(session, token)
        if found is None:
            return None
        op, row = found
        return Me(
            id=op.id,
            login=op.login,
            name=op.name,
            role=op.role,
            groups=tuple(str(g) for g in op.groups),
            max_chats=op.max_chats,
            status=op.status,
            csrf=row.csrf,
            token=token,
        )


def client_ip(request: web.Request) -> str:
    """The peer's address (the limiter and the audit log use the same one)."""
    return request.remote or "unknown"


def remember(request: web.Request, who: Me) -> None:
    request[_ME] = who


def route_kind(request: web.Request) -> RouteKind:
    """Route names say what a route is: `public:*` (login, static), `api:*` and `ws` (answer
    401/403 JSON), anything else is a page (redirect to the login form)."""
    resource = request.match_info.route.resource
    name = resource.name if resource is not None else None
    if name is None:  # no route matched (404): judge by the path
        return "api" if "/api/" in request.path or request.path.endswith("/ws") else "page"
    if name.startswith("public:"):
        return "public"
    if name.startswith("api:") or name == "ws":
        return "api"
    return "page"


async def csrf_given(request: web.Request) -> str | None:
    """The CSRF token a state-changing request carries: the header, else a urlencoded form field
    (multipart bodies are never read here: uploads come from the page JS, with the header)."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()  # cached by aiohttp: the handler can read it again
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def same_origin(request: web.Request) -> bool:
    """False if the browser says the request comes from another origin. Requests without an
    Origin header (non-browser clients, some same-origin GETs) pass: the tokens still apply."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == request.host


def tokens_match(expected: str | None, given: str | None) -> bool:
    return (
        bool(expected)
        and bool(given)
        and hmac.compare_digest((expected or "").encode(), (given or "").encode())
    )


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def set_cookie(
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    path: str,
    secure: bool,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, name: str, *, path: str) -> None:
    response.del_cookie(name, path=path)


class LoginLimiter:
    """Failed logins per (login, IP) in a sliding window; in-process (each app process counts
    its own attempts, so N processes allow N times as many: still a wall against guessing)."""

    def __init__(
        self,
        attempts: int = LOGIN_ATTEMPTS,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        now = self.clock()
        recent = [t for t in self._failures.get(key, []) if now - t < self.window]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def retry_after(self, login: str, ip: str) -> float | None:
        """Seconds until another attempt is allowed, or None if one is allowed now."""
        recent = self._recent((login.casefold(), ip))
        if len(recent) < self.attempts:
            return None
        return max(1.0, self.window - (self.clock() - recent[0]))

    def failed(self, login: str, ip: str) -> None:
        if len(self._failures) > 10_000:  # forget stale keys so the dict can't grow forever
            for key in list(self._failures):
                self._recent(key)
        key = (login.casefold(), ip)
        self._failures[key] = [*self._recent(key), self.clock()]

    def succeeded(self, login: str, ip: str) -> None:
        self._failures.pop((login.casefold(), ip), None)
