"""Canned replies: the starter set seeded into an empty table, search for the reply box, and
adding new ones (supervisors).

A shortcut is stored without the leading slash ("pay"); operators type "/pay" + Tab.
Search is done in Python, not SQL: the table is small and SQLite's LIKE folds only ASCII case,
so "Минутку" would not find "минутку".
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.limits import MAX_TEXT
from handoff.console.security import Me
from storage.db import Database
from storage.models import CannedReply

SHORTCUT = re.compile(r"^[\w-]{1,31}$")
SEED: tuple[tuple[str, str, str], ...] = (
    (
        "hello",
        "Приветствие",
        "Здравствуйте! Я специалист поддержки, уже прочитал(а) переписку с ботом. Сейчас помогу 🙂",
    ),
    ("wait", "Минутку", "Минутку, уточняю 🙏"),
    (
        "pay",
        "Как оплатить",
        "Оплатить связь можно в личном кабинете или приложении (картой или через СБП), "
        "в терминалах и салонах связи, а ещё можно подключить автоплатёж — тогда об оплате "
        "думать не придётся. Деньги обычно приходят за пару минут.",
    ),
    (
        "reboot",
        "Перезагрузка роутера",
        "Давайте перезагрузим роутер:\n"
        "1) выключите его из розетки;\n"
        "2) подождите 30 секунд;\n"
        "3) включите и подождите 2–3 минуты, пока загорятся индикаторы;\n"
        "4) проверьте интернет.\n"
        "Напишите, пожалуйста, помогло ли?",
    ),
    (
        "bye",
        "Прощание",
        "Рад(а) был(а) помочь! Если появятся вопросы — пишите в любое время. Хорошего дня 👋",
    ),
)


class CannedError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def normalize_shortcut(shortcut: str) -> str:
    return shortcut.strip().lstrip("/").casefold()


async def seed_canned(db: Database) -> int:
    """Add the starter canned replies if there are none yet; returns how many were added.
    Safe when several app processes start at once (the unique shortcut stops doubles)."""
    try:
        async with db.session() as session, session.begin():
            if await session.scalar(select(func.count(CannedReply.id))):
                return 0
            session.add_all(
                CannedReply(shortcut=s, title=title, text=text, groups=[])
                for s, title, text in SEED
            )
    except IntegrityError:
        return 0  # another process seeded them a moment ago
    return len(SEED)


def as_json(reply: CannedReply) -> dict[str, Any]:
    return {
        "id": reply.id,
        "shortcut": reply.shortcut,
        "title": reply.title,
        "text": reply.text,
        "groups": list(reply.groups),
    }


def _visible(reply: CannedReply, who: Me) -> bool:
    return who.supervisor or not reply.groups or bool(set(reply.groups) & set(who.groups))


async def search(session: AsyncSession, who: Me, query: str = "") -> list[dict[str, Any]]:
    """Canned replies for the operator's groups matching `query` in the shortcut, title or text;
    exact shortcut first, then shortcut prefixes, then the rest."""
    q = query.strip().casefold()
    short = q.lstrip("/")
    found: list[tuple[int, str, CannedReply]] = []
    for reply in (await session.scalars(select(CannedReply))).all():
        if not _visible(reply, who):
            continue
        shortcut = reply.shortcut.casefold()
        if not q:
            rank = 3
        elif shortcut == short:
            rank = 0
        elif shortcut.startswith(short):
            rank = 1
        elif q in f"{reply.title}\n{reply.text}".casefold() or short in shortcut:
            rank = 2
        else:
            continue
        found.append((rank, shortcut, reply))
    found.sort(key=lambda f: (f[0], f[1]))
    return [as_json(r) for _, _, r in found[:50]]


async def add(session: AsyncSession, body: dict[str, Any], known_groups: list[str]) -> CannedReply:
    shortcut = normalize_shortcut(str(body.get("shortcut") or ""))
    title = str(body.get("title") or "").strip()
    text = str(body.get("text") or "").strip()
    groups = body.get("groups") or []
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    if not SHORTCUT.match(shortcut):
        raise CannedError("shortcut: 1-31 letters, digits, '_' or '-' (e.g. /pay)")
    if not title or len(title) > 100:
        raise CannedError("title: 1-100 characters")
    if not text or len(text) > MAX_TEXT:
        raise CannedError(f"text: 1-{MAX_TEXT} characters")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise CannedError("groups: a list of skill group names")
    unknown = sorted(set(groups) - set(known_groups))
    if unknown:
        raise CannedError(f"groups: unknown {', '.join(unknown)}")
    if await session.scalar(select(CannedReply.id).where(CannedReply.shortcut == shortcut)):
        raise CannedError(f"/{shortcut} already exists", 409)
    reply = CannedReply(shortcut=shortcut, title=title, text=text, groups=groups)
    session.add(reply)
    await session.flush()
    return reply
