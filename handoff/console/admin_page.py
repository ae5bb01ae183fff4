"""Operator accounts for admins: `/console/operators` lists every account (active, disabled,
removed) and manages them with plain HTML forms (no script; each POST carries the session's CSRF
token in the `csrf` field):

- `POST /operators`: add (login, name, password, role, groups, max chats, Telegram id);
- `POST /operators/{id}/edit`: name, role, groups, max chats;
- `POST /operators/{id}/password`: a new password (the account's sessions end);
- `POST /operators/{id}/disable`, `/enable`: a disabled operator can't log in, their sessions
  end at once and their chats go back to the queue;
- `POST /operators/{id}/remove` (with the `confirm` box ticked): a soft delete, see
  `handoff.auth`.

The rules (nobody disables, removes or re-roles themselves; the last active admin stays) and the
audit entries live in `handoff.auth`, shared with the CLI. A done change redirects back to the
list (POST-redirect-GET) with `?done=<what>&id=<operator id>`; a refused one shows the list
again with the reason.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from handoff import auth
from handoff.console.security import Me, client_ip, me
from handoff.console.state import console
from handoff.console.views import STATUS_LABELS, local
from storage.models import Operator, OperatorRole

FOR_ADMINS = "Управление операторами — для администраторов."
ROLES: dict[str, str] = {
    OperatorRole.OPERATOR: "оператор",
    OperatorRole.SUPERVISOR: "супервизор",
    OperatorRole.EDITOR: "редактор",
    OperatorRole.ADMIN: "администратор",
}
STATES = {"active": "активен", "disabled": "отключён", "removed": "удалён"}
DONE = {
    "added": "Учётная запись {login} создана.",
    "changed": "Изменения {login} сохранены.",
    "password": "Пароль {login} изменён; открытые сессии завершены.",
    "disabled": "{login} отключён: открытые сессии завершены, его чаты вернулись в очередь.",
    "enabled": "{login} снова может входить в консоль.",
    "removed": "{login} удалён. Имя остаётся в истории чатов, логин больше не используется.",
}
ERRORS = {
    "exists": "Такой логин уже есть (логины удалённых тоже заняты).",
    "bad_login": "Логин — от 1 до 64 символов, без пробелов.",
    "password_short": "Пароль — не короче 8 символов.",
    "bad_role": "Нет такой роли.",
    "bad_groups": "Группы — из списка.",
    "bad_max_chats": f"Мест — от 1 до {auth.MAX_CHATS}.",
    "bad_name": "Имя — от 1 до 100 символов.",
    "telegram_taken": "Этот Telegram id уже привязан к другому оператору.",
    "not_found": "Нет такого оператора.",
    "removed": "Учётная запись удалена: создайте новую.",
    "already_disabled": "Учётная запись уже отключена.",
    "not_disabled": "Учётная запись не отключена.",
    "self": "Свою учётную запись нельзя отключить, удалить или сменить ей роль.",
    "last_admin": "Это последний активный администратор: сначала назначьте другого.",
}
MAX_FIELD = 200


def _admin(request: web.Request) -> Me | None:
    who = me(request)
    return who if who.admin else None


def _actor(request: web.Request, who: Me) -> auth.Actor:
    return auth.Actor(kind="operator", operator_id=who.id, ip=client_ip(request))


def _item(op: Operator, who: Me, tz: Any) -> dict[str, Any]:
    state = auth.state_of(op)
    return {
        "id": op.id,
        "login": op.login,
        "name": op.name,
        "role": op.role,
        "role_label": ROLES.get(op.role, op.role),
        "groups": list(op.groups),
        "max_chats": op.max_chats,
        "status_label": STATUS_LABELS.get(op.status, op.status),
        "state": state,
        "state_label": STATES[state],
        "disabled_time": local(op.disabled_at, tz),
        "telegram": op.telegram_user_id or "",
        "created": local(op.created_at, tz),
        "me": op.id == who.id,
    }


async def _render(
    request: web.Request, *, error: str | None = None, status: int = 200, form: Any = None
) -> web.Response:
    state = console(request)
    who = me(request)
    async with state.db.session() as session:
        ops = (await session.scalars(select(Operator).order_by(Operator.login))).all()
    items = [_item(op, who, state.tz) for op in ops]
    order = {"active": 0, "disabled": 1, "removed": 2}
    items.sort(key=lambda i: (order[i["state"]], i["login"]))
    done = None
    code = request.query.get("done", "")
    target = request.query.get("id", "")
    if code in DONE and target.isdigit():
        found = next((i for i in items if i["id"] == int(target)), None)
        if found is not None:
            done = DONE[code].format(login=found["login"])
    return state.render(
        request,
        "operators.html",
        status=status,
        operators=items,
        roles=list(ROLES.items()),
        groups=state.groups,
        default_max_chats=state.settings.handoff.max_chats,
        error=error,
        done=done,
        form=form or {},
    )


async def page(request: web.Request) -> web.StreamResponse:
    if _admin(request) is None:
        return console(request).render(request, "error.html", status=403, message=FOR_ADMINS)
    return await _render(request)


def _refused(exc: auth.AuthError) -> str:
    return ERRORS.get(exc.code, f"Не получилось: {exc}")


def _status(exc: auth.AuthError) -> int:
    if exc.code == "not_found":
        return 404
    if exc.code in ("self", "last_admin", "removed", "already_disabled", "not_disabled", "exists"):
        return 409
    return 400


def _done(request: web.Request, code: str, op_id: int) -> web.Response:
    location = f"{console(request).prefix}/operators?done={code}&id={op_id}"
    return web.Response(status=303, headers={"Location": location})


async def _fields(request: web.Request) -> dict[str, Any]:
    form = await request.post()
    out: dict[str, Any] = {
        k: str(v)[:MAX_FIELD] for k, v in form.items() if isinstance(v, str) and k != "groups"
    }
    out["groups"] = [str(g) for g in form.getall("groups", []) if isinstance(g, str)]
    return out


def _groups(request: web.Request, fields: dict[str, Any]) -> list[str]:
    known = console(request).groups
    groups = [g for g in fields["groups"] if g]
    if any(g not in known for g in groups):
        raise auth.AuthError("unknown group", "bad_groups")
    return groups


def _max_chats(raw: str) -> int:
    raw = raw.strip()
    if not raw.isdigit():
        raise auth.AuthError("max chats must be a number", "bad_max_chats")
    return int(raw)


async def add(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = _admin(request)
    if who is None:
        return state.render(request, "error.html", status=403, message=FOR_ADMINS)
    fields = await _fields(request)
    try:
        password = await auth.new_password(fields.get("password", ""))  # before the transaction
        async with state.db.transaction() as session:
            op = await auth.add_operator(
                session,
                login=fields.get("login", ""),
                name=fields.get("name", ""),
                password=password,
                role=fields.get("role", OperatorRole.OPERATOR),
                groups=_groups(request, fields),
                max_chats=_max_chats(fields.get("max_chats", "")),
                telegram_user_id=fields.get("telegram_user_id", "").strip() or None,
                by=_actor(request, who),
            )
    except auth.AuthError as exc:
        fields.pop("password", None)  # never echoed back into the page
        return await _render(request, error=_refused(exc), status=_status(exc), form=fields)
    return _done(request, "added", op.id)


async def _act(request: web.Request, what: str) -> web.StreamResponse:
    state = console(request)
    who = _admin(request)
    if who is None:
        return state.render(request, "error.html", status=403, message=FOR_ADMINS)
    target = int(request.match_info["id"])
    fields = await _fields(request)
    by = _actor(request, who)
    if what == "removed" and fields.get("confirm") != "yes":
        return await _render(request, error="Отметьте «подтверждаю», чтобы удалить.", status=400)
    try:
        # hashed before the transaction: no connection is held during the hash
        password = (
            await auth.new_password(fields.get("password", "")) if what == "password" else None
        )
        async with state.db.transaction() as session:
            if what == "disabled":
                await auth.disable_operator(session, target, by=by)
            elif what == "enabled":
                await auth.enable_operator(session, target, by=by)
            elif what == "removed":
                await auth.remove_operator(session, target, by=by)
            elif password is not None:
                await auth.reset_password(session, target, password, by=by)
            else:
                await auth.update_operator(
                    session,
                    target,
                    by=by,
                    name=fields.get("name"),
                    role=fields.get("role"),
                    groups=_groups(request, fields),
                    max_chats=_max_chats(fields.get("max_chats", "")),
                )
    except auth.AuthError as exc:
        return await _render(request, error=_refused(exc), status=_status(exc))
    if what == "password" and target == who.id:  # own sessions ended too: log in again
        return web.Response(status=303, headers={"Location": f"{state.prefix}/login"})
    return _done(request, what, target)


async def edit(request: web.Request) -> web.StreamResponse:
    return await _act(request, "changed")


async def password(request: web.Request) -> web.StreamResponse:
    return await _act(request, "password")


async def disable(request: web.Request) -> web.StreamResponse:
    return await _act(request, "disabled")


async def enable(request: web.Request) -> web.StreamResponse:
    return await _act(request, "enabled")


async def remove(request: web.Request) -> web.StreamResponse:
    return await _act(request, "removed")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/operators", page, name="operators")
    r.add_post("/operators", add, name="operators-add")
    r.add_post(r"/operators/{id:\d+}/edit", edit, name="operators-edit")
    r.add_post(r"/operators/{id:\d+}/password", password, name="operators-password")
    r.add_post(r"/operators/{id:\d+}/disable", disable, name="operators-disable")
    r.add_post(r"/operators/{id:\d+}/enable", enable, name="operators-enable")
    r.add_post(r"/operators/{id:\d+}/remove", remove, name="operators-remove")
