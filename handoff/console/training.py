"""The NLU improvement loop: editors review messages the NLU was unsure of or got wrong and assign the right intent; the example joins the training data and the engine retrains.

Routes (editors, supervisors and admins; plain operators get 403):
- `GET /training`: the page;
- `GET /api/training` (`api:training`): the review list, the intents, the live model;
- `POST /api/training/{message_id}` (`api:training-review`): `{"intent": "<name>"}` adds the
  text to `content/nlu/from_console.yml` (nlu/learned.py) and stores the verdict (`NluReview`);
  `{"ignore": true}` only stores the verdict. Either way the text leaves the list;
- `GET /api/training/model` (`api:training-model`): which model answers now (the page polls it
  after an add until the model trained with the new example is live).

Retraining is not started here: writing the file is what the NLU's hot reload watches
(supportbot/nlu_setup.py, `ReloadingEngine.watch`), so the console's examples take the same path
as an editor's edit of the files.

The review list: subscriber texts of the last `days` days that the bot did not understand
(`nlu.handled_as == "miss"`), or understood with less than `review_below` confidence, or where
the bot's answer was wrong by the subscriber's own account: they asked for a human right after
it (and the chat went to an operator) or pressed «🤷 Другое» under the bot's suggestions. Answers
to a form's question and cancels are not requests and stay out, as do texts already reviewed
or already in the training data. Identical texts (`nlu.learned.example_key`) are one row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.content import INTENT_PAYLOAD, NONE_OF_THESE, Content
from handoff.console.security import Me, me
from handoff.console.state import ApiError, console, json_body
from handoff.console.views import CHANNELS, iso, local
from nlu import learned
from storage.db import Database
from storage.models import (
    Author,
    Conversation,
    ConversationEvent,
    ConversationState,
    Message,
    NluReview,
    Operator,
    utcnow,
)

REVIEW_MARGIN = 0.25  # a message is worth a look below the NLU threshold + this
DAYS = 14
LIMIT = 100  # rows on the page
SCAN = 3000  # newest candidate messages read per list (bounds the work on a busy line)
REASONS = {
    "miss": "бот не понял",
    "unsure": "бот не уверен",
    "human": "после ответа бота попросили оператора",
    "none": "абонент нажал «Другое»",
}


class LiveModel(Protocol):
    """What the console needs of the NLU engine (supportbot.nlu_setup.ReloadingEngine)."""

    @property
    def fingerprint(self) -> str: ...  # of the training data the answering model learned

    def intents(self) -> tuple[str, ...]: ...


@dataclass
class Training:
    """The NLU improvement loop's wiring: where examples go and which model answers."""

    nlu_dir: Path  # content/nlu
    model: LiveModel
    review_below: float = 0.4 + REVIEW_MARGIN
    days: int = DAYS
    limit: int = LIMIT
    held_out: Path | None = None  # default: nlu_dir/../nlu_test
    # When this process saw each fingerprint go live (the engine may say it better: live_since).
    seen: dict[str, datetime] = field(default_factory=dict)

    def model_status(self) -> dict[str, Any]:
        fingerprint = self.model.fingerprint
        since = getattr(self.model, "live_since", None)
        if not isinstance(since, datetime):
            since = self.seen.setdefault(fingerprint, utcnow())
        # "rasa": the console's examples retrain the embedded fallback here; the Rasa server
        # learns them when it is retrained from content/nlu (`supportbot rasa serve`).
        engine = str(getattr(self.model, "name", "embedded"))
        return {"fingerprint": fingerprint, "live_since": iso(since), "engine": engine}


TRAINING = web.AppKey("training", Training)


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app (names: pages plain, JSON `api:*`)."""
    r.add_get("/training", page, name="training")
    r.add_get("/api/training", api_list, name="api:training")
    r.add_get("/api/training/model", api_model, name="api:training-model")
    r.add_post(r"/api/training/{id:\d+}", api_review, name="api:training-review")


# -- access --------------------------------------------------------------------------------------


def _trainer(request: web.Request) -> Me:
    who = me(request)
    if not (who.editor or who.supervisor):
        raise ApiError("NLU training is for editors and supervisors", 403)
    return who


def _training(request: web.Request) -> Training:
    found = request.app.get(TRAINING)
    if found is None:
        raise ApiError("NLU training is not set up in this console", 503)
    return found


# -- handlers ------------------------------------------------------------------------------------


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if not (who.editor or who.supervisor):
        return state.render(
            request,
            "error.html",
            status=403,
            message="Обучение NLU — для редакторов и супервизоров.",
        )
    training = request.app.get(TRAINING)
    data = await _list(request, training) if training is not None else None
    return state.render(request, "training.html", data=data)


async def api_list(request: web.Request) -> web.Response:
    _trainer(request)
    return web.json_response(await _list(request, _training(request)))


async def api_model(request: web.Request) -> web.Response:
    _trainer(request)
    return web.json_response(_training(request).model_status())


async def api_review(request: web.Request) -> web.Response:
    state = console(request)
    who = _trainer(request)
    training = _training(request)
    message_id = int(request.match_info["id"])
    body = await json_body(request)
    ignore = body.get("ignore") is True
    intent = body.get("intent")
    if ignore == (intent is not None):
        raise ApiError('send {"intent": "<name>"} to add the example or {"ignore": true}')
    if not ignore and (not isinstance(intent, str) or not intent.strip()):
        raise ApiError("`intent` must be an intent's name")
    async with state.db.session() as session:
        message = await session.get(Message, message_id)
        if message is None or message.author != Author.SUBSCRIBER:
            raise ApiError(f"no subscriber message {message_id}", 404)
        if not (message.text or "").strip():
            raise ApiError(f"message {message_id} has no text to learn from")
        done = await session.get(NluReview, message_id)
        if done is not None:
            raise ApiError(await _already(session, done), 409)
        text = message.text or ""
    if ignore:
        await _store(state.db, message_id, None, learned.clean_example(text), who.id)
        return web.json_response({"ok": True, "ignored": message_id})
    assert isinstance(intent, str)
    try:
        added = await asyncio.to_thread(
            learned.add_example, training.nlu_dir, text, intent, held_out=training.held_out
        )
    except learned.UnknownIntent as exc:
        raise ApiError(str(exc), 400) from exc
    except (learned.DuplicateExample, learned.HeldOutExample, learned.BrokenTrainingData) as exc:
        raise ApiError(str(exc), 409) from exc
    except learned.LearnError as exc:
        raise ApiError(str(exc), 400) from exc
    await _store(state.db, message_id, intent, added.text, who.id)
    return web.json_response(
        {
            "ok": True,
            "intent": intent,
            "example": added.example,
            "file": _shown(added.file, training.nlu_dir),
            "model": {**training.model_status(), "expected": added.fingerprint},
        }
    )


async def _store(db: Database, message_id: int, intent: str | None, text: str, who: int) -> None:
    try:
        async with db.session() as session, session.begin():
            session.add(NluReview(message_id=message_id, intent=intent, text=text, operator_id=who))
    except IntegrityError as exc:  # another editor, a moment earlier
        raise ApiError(f"message {message_id} was already reviewed", 409) from exc


async def _already(session: AsyncSession, done: NluReview) -> str:
    who = await session.get(Operator, done.operator_id) if done.operator_id else None
    by = f" by {who.name}" if who is not None else ""
    if done.intent is None:
        return f"message {done.message_id} was already skipped{by}"
    return f"message {done.message_id} was already added to {done.intent!r}{by}"


def _shown(path: Path, nlu_dir: Path) -> str:
    """`content/nlu/from_console.yml`, not the absolute path of the server's checkout."""
    root = nlu_dir.resolve().parent.parent
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.name


# -- the review list -------------------------------------------------------------------------------


async def _list(request: web.Request, training: Training) -> dict[str, Any]:
    state = console(request)
    known = await asyncio.to_thread(learned.known_keys, training.nlu_dir)
    content = state.current_content
    async with state.db.session() as session:
        items = await review_list(session, training, known=set(known), tz=state.tz, content=content)
    intents = list(training.model.intents()) or sorted({k.intent for k in known.values()})
    return {
        "items": items,
        "intents": [{"name": i, "title": _title(content, i)} for i in intents],
        "model": training.model_status(),
        "review_below": round(training.review_below, 2),
        "days": training.days,
        "limit": training.limit,
    }


@dataclass
class _Msg:
    id: int
    conversation_id: int
    text: str | None
    payload: str | None
    nlu: dict[str, Any] | None
    channel: str
    at: datetime
    reasons: set[str] = field(default_factory=set)
    picked: str | None = None

    @property
    def handled_as(self) -> str:
        return str((self.nlu or {}).get("handled_as") or "")

    @property
    def reviewable(self) -> bool:
        """A text the NLU judged as a request (not a form's answer, a cancel or a button)."""
        handled = self.handled_as
        return (
            bool((self.text or "").strip())
            and not self.payload
            and bool(self.nlu and self.nlu.get("intent"))
            and not handled.startswith("form:")
            and handled != "cancel"
        )

    @property
    def confidence(self) -> float:
        try:
            return float((self.nlu or {}).get("confidence") or 0.0)
        except (TypeError, ValueError):
            return 0.0

    @property
    def asked_for_human(self) -> bool:
        if self.payload == INTENT_PAYLOAD + "operator":
            return True
        return (
            not self.payload
            and bool(self.nlu)
            and (self.nlu or {}).get("intent") == "operator"
            and not self.handled_as  # the flow ran: not a miss, not a form's answer
        )


async def review_list(
    session: AsyncSession,
    training: Training,
    *,
    known: set[str],
    tz: tzinfo,
    content: Content | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The rows of the review page, newest first (see the module docstring)."""
    now = now or utcnow()
    since = now - timedelta(days=training.days)
    handled = Message.nlu["handled_as"].as_string()
    confidence = Message.nlu["confidence"].as_float()
    # 1. texts the bot missed or was unsure of; 2. «Другое» presses; 3. the bot's escalations.
    flagged = (
        await session.execute(
            select(Message.conversation_id)
            .where(
                Message.author == Author.SUBSCRIBER,
                Message.created_at >= since,
                or_(
                    handled == "miss",
                    confidence < training.review_below,
                    Message.payload == NONE_OF_THESE,
                ),
            )
            .order_by(Message.id.desc())
            .limit(SCAN)
        )
    ).scalars()
    escalations = (
        await session.execute(
            select(ConversationEvent.conversation_id, ConversationEvent.at)
            .where(
                ConversationEvent.kind == "escalated",
                ConversationEvent.from_state == ConversationState.BOT,
                ConversationEvent.at >= since,
            )
            .order_by(ConversationEvent.id.desc())
            .limit(SCAN)
        )
    ).all()
    conv_ids = set(flagged) | {c for c, _ in escalations}
    if not conv_ids:
        return []
    rows = (
        await session.execute(
            select(
                Message.id,
                Message.conversation_id,
                Message.text,
                Message.payload,
                Message.nlu,
                Message.channel,
                Conversation.channel,
                Message.created_at,
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.conversation_id.in_(conv_ids),
                Message.author == Author.SUBSCRIBER,
                Message.created_at >= since,
            )
            .order_by(Message.conversation_id, Message.id)
        )
    ).all()
    by_conv: dict[int, list[_Msg]] = {}
    for mid, cid, text, payload, nlu, channel, conv_channel, at in rows:
        nlu_dict = nlu if isinstance(nlu, dict) else None
        by_conv.setdefault(cid, []).append(
            _Msg(mid, cid, text, payload, nlu_dict, channel or conv_channel, at)
        )
    for msgs in by_conv.values():
        _mark(msgs, training.review_below)
    for cid, at in escalations:
        _mark_escalation(by_conv.get(cid, []), at)
    reviewed = await _reviewed(session)
    groups: dict[str, list[_Msg]] = {}
    for msgs in by_conv.values():
        for m in msgs:
            if not m.reasons or m.id in reviewed.ids:
                continue
            key = learned.example_key(learned.clean_example(m.text or ""))
            if not key or key in known or key in reviewed.keys:
                continue
            groups.setdefault(key, []).append(m)
    ordered = sorted(groups.values(), key=lambda g: max(m.id for m in g), reverse=True)
    return [_item(g, tz=tz, now=now, content=content) for g in ordered[: training.limit]]


def _mark(msgs: list[_Msg], review_below: float) -> None:
    """Reasons from one conversation's subscriber messages, in order."""
    for i, m in enumerate(msgs):
        if m.reviewable:
            if m.handled_as == "miss":
                m.reasons.add("miss")
            elif m.confidence < review_below:
                m.reasons.add("unsure")
        prev = msgs[i - 1] if i > 0 else None
        if prev is None or not prev.reviewable:
            continue
        if m.payload == NONE_OF_THESE:
            prev.reasons.add("none")
        elif m.payload and m.payload.startswith(INTENT_PAYLOAD) and prev.reasons:
            prev.picked = m.payload.removeprefix(INTENT_PAYLOAD)  # chose a suggestion


def _mark_escalation(msgs: list[_Msg], at: datetime) -> None:
    """The bot handed the chat over at `at`: if the subscriber's message that did it asked for a
    human, the message before it got an answer that did not help."""
    # The event is stored during the turn, before the turn's message: the trigger is the first
    # subscriber message at or after it.
    trigger = next((i for i, m in enumerate(msgs) if m.at >= at), None)
    if trigger is None or trigger == 0 or not msgs[trigger].asked_for_human:
        return
    prev = msgs[trigger - 1]
    if prev.reviewable and not prev.asked_for_human:
        prev.reasons.add("human")


@dataclass
class _Reviewed:
    ids: set[int]
    keys: set[str]


async def _reviewed(session: AsyncSession) -> _Reviewed:
    """Every verdict so far: a text skipped once stays skipped, an added one is trained."""
    rows = (await session.execute(select(NluReview.message_id, NluReview.text))).all()
    return _Reviewed(
        {mid for mid, _ in rows},
        {learned.example_key(text) for _, text in rows if text},
    )


def _title(content: Content | None, intent: str | None) -> str | None:
    if content is None or not intent:
        return None
    flow = content.intent_flows.get(intent)
    found = content.flows.get(flow) if flow else None
    return found.title if found is not None else None


def _item(
    group: list[_Msg], *, tz: tzinfo, now: datetime, content: Content | None
) -> dict[str, Any]:
    newest = max(group, key=lambda m: m.id)
    nlu = newest.nlu or {}
    intent = str(nlu.get("intent") or "") or None
    ranking = [
        {
            "intent": str(r.get("name")),
            "confidence": round(float(r.get("confidence") or 0.0), 3),
            "percent": f"{round(float(r.get('confidence') or 0.0) * 100)}%",
        }
        for r in (nlu.get("ranking") or [])[:3]
        if isinstance(r, dict)
    ]
    reasons = set().union(*(m.reasons for m in group))
    picked = next((m.picked for m in sorted(group, key=lambda m: -m.id) if m.picked), None)
    channels = sorted({m.channel for m in group if m.channel})
    return {
        "message_id": newest.id,
        "message_ids": sorted(m.id for m in group),
        "text": " ".join((newest.text or "").split()),
        "count": len(group),
        "channel": newest.channel,
        "channel_label": CHANNELS.get(newest.channel, newest.channel),
        "channels": [{"channel": c, "label": CHANNELS.get(c, c)} for c in channels],
        "at": iso(newest.at),
        "time": local(newest.at, tz, now),
        "guess": {
            "intent": intent,
            "title": _title(content, intent),
            "confidence": round(newest.confidence, 3),
            "percent": f"{round(newest.confidence * 100)}%",
        }
        if intent
        else None,
        "ranking": ranking,
        "reasons": [{"code": r, "label": REASONS[r]} for r in REASONS if r in reasons],
        "picked": picked,
        "preselect": picked or intent,
    }
