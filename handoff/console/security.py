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
- Client address: the peer's, or, when the peer is one of `handoff.trusted_proxies`, the
  rightmost address of X-Forwarded-For that is not a trusted proxy (the one our own proxy saw).
  From any other peer the header is ignored: a client can't pick the address it is limited by.
- Login limits (`LoginLimiter`, failed logins within `handoff.login_window`): per (login,
  address), per address, distinct logins per address (password spraying), and per login across
  addresses. The last one only holds back addresses the login never logged in from (the audit
  log says which it did): a stranger's guesses delay the operator on a new address by at most
  the window after the guessing stops, and never at their usual one. While limited, even the
  right password gets 429 with Retry-After; refused attempts are not checked and not counted.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from handoff import auth
from handoff.config import HandoffSettings
from storage.db import Database
from storage.models import OperatorRole

log = logging.getLogger(__name__)
SESSION_COOKIE = "sb_console"
LOGIN_COOKIE = "sb_console_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
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
_CLIENT: Any = (
    web.RequestKey("console_client", str) if hasattr(web, "RequestKey") else "console.client"
)
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
    """The client's address (the limiter and the audit log use the same one): what
    `remember_client` found for this request, else the peer's."""
    found = request.get(_CLIENT)
    return found if isinstance(found, str) else request.remote or "unknown"


def remember_client(request: web.Request, proxies: TrustedProxies) -> None:
    request[_CLIENT] = proxies.client(request.remote, request.headers.getall("X-Forwarded-For", []))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Which peers' X-Forwarded-For is believed (`handoff.trusted_proxies`)."""

    def __init__(self, proxies: list[str] | str) -> None:
        given = [proxies] if isinstance(proxies, str) else proxies
        self.networks: list[Network] = [ipaddress.ip_network(p, strict=False) for p in given]
        self._warned = False

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, peer: str | None, forwarded: list[str]) -> str:
        """The client's address: the peer, unless it is a trusted proxy; then the rightmost
        X-Forwarded-For hop that is not one (each proxy appends the address it saw)."""
        client = peer or "unknown"
        if not forwarded:
            return client
        if not self.trusted(client):
            if not self._warned:  # a proxy in front that nobody told us about?
                self._warned = True
                log.warning(
                    "console: X-Forwarded-For from %s ignored (not in "
                    "SUPPORTBOT_HANDOFF__TRUSTED_PROXIES): behind a proxy, every client "
                    "counts as the proxy's address",
                    client,
                )
            return client
        hops = [h.strip() for header in forwarded for h in header.split(",")]
        for hop in reversed(hops):
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                return client  # garbage left of our proxies: the last address we trust saw it
            if not self.trusted(address):
                return address
            client = address
        return client


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
    """Failed console logins in a sliding window (`handoff.login_*` settings), counted four
    ways: per (login, address), per address, distinct logins per address (spraying) and per
    login across addresses. In-process: each app process counts its own attempts, so N
    processes allow N times as many (still a wall against guessing)."""

    def __init__(
        self,
        settings: HandoffSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cfg = settings or HandoffSettings()
        self.window = cfg.login_window
        self.per_pair = cfg.login_failures_per_login_ip
        self.per_ip = cfg.login_failures_per_ip
        self.spray = cfg.login_spray_logins
        self.per_login = cfg.login_failures_per_login
        self.clock = clock
        # ("pair", login, ip) / ("ip", ip) / ("login", login) -> failure times;
        # and per address: each distinct login that failed there -> its latest failure.
        self._failures: dict[tuple[str, ...], list[float]] = {}
        self._sprayed: dict[str, dict[str, float]] = {}

    def _recent(self, key: tuple[str, ...]) -> list[float]:
        now = self.clock()
        recent = [t for t in self._failures.get(key, []) if now - t < self.window]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def _logins_from(self, ip: str) -> dict[str, float]:
        now = self.clock()
        logins = {k: t for k, t in self._sprayed.get(ip, {}).items() if now - t < self.window}
        if logins:
            self._sprayed[ip] = logins
        else:
            self._sprayed.pop(ip, None)
        return logins

    def _wait(self, times: list[float], limit: int) -> float | None:
        """Seconds until `times` (sorted) falls below `limit`, None if it already is."""
        if len(times) < limit:
            return None
        oldest_that_counts = sorted(times)[len(times) - limit]
        return max(1.0, self.window - (self.clock() - oldest_that_counts))

    def retry_after(self, login: str, ip: str) -> float | None:
        """Seconds until `ip` may try `login` again by the per-address limits (None: now)."""
        name = login.casefold()
        logins = self._logins_from(ip)
        waits = [
            self._wait(self._recent(("pair", name, ip)), self.per_pair),
            self._wait(self._recent(("ip", ip)), self.per_ip),
            # spraying: an address that failed on `spray` distinct logins waits, for any login
            self._wait(list(logins.values()), self.spray),
        ]
        found = [w for w in waits if w is not None]
        return max(found) if found else None

    def login_retry_after(self, login: str) -> float | None:
        """Seconds until `login` may be tried again from an address it never logged in from."""
        return self._wait(self._recent(("login", login.casefold())), self.per_login)

    def reached(self, login: str, ip: str) -> bool:
        """After a failure: does some limit now hold back the next attempt like it?"""
        return self.retry_after(login, ip) is not None or self.login_retry_after(login) is not None

    def failed(self, login: str, ip: str) -> None:
        if len(self._failures) + len(self._sprayed) > 10_000:  # forget stale keys
            for key in list(self._failures):
                self._recent(key)
            for address in list(self._sprayed):
                self._logins_from(address)
        name, now = login.casefold(), self.clock()
        for key in (("pair", name, ip), ("ip", ip), ("login", name)):
            self._failures[key] = [*self._recent(key), now]
        self._sprayed.setdefault(ip, {})[name] = now

    def succeeded(self, login: str, ip: str) -> None:
        self._failures.pop(("pair", login.casefold(), ip), None)
