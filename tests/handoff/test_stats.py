"""The supervisor's SLA figures, checked against a hand-computed day of one operator's chats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handoff.console.stats import supervisor_view
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    Message,
    Subscriber,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 15:00 in Moscow


def at(minutes: float) -> datetime:
    return NOW - timedelta(hours=2) + timedelta(minutes=minutes)


async def test_figures_match_a_hand_computed_day(db: Database) -> None:
    async with db.session() as s, s.begin():
        sub = Subscriber(display_name="Иван", data={})
        s.add(sub)
        await s.flush()
        acc = ChannelAccount(
            subscriber_id=sub.id, channel="telegram", external_user_id="1", chat_id="1"
        )
        s.add(acc)
        await s.flush()
        # Chat A: queued 0, first reply after 30 s; then questions answered in 60 s and 120 s.
        a = Conversation(
            subscriber_id=sub.id, channel_account_id=acc.id, channel="telegram", state="closed",
            skill_group="consult", slots={}, queued_at=at(0), assigned_at=at(0.25),
            first_response_at=at(0.5), operator_replied_at=at(6), closed_at=at(7), csat=5,
        )  # fmt: skip
        # Chat B: first reply after 90 s (late for a 60 s target), rated 3, missed once.
        b = Conversation(
            subscriber_id=sub.id, channel_account_id=acc.id, channel="telegram", state="closed",
            skill_group="consult", slots={}, queued_at=at(10), assigned_at=at(10.5),
            first_response_at=at(11.5), operator_replied_at=at(11.5), closed_at=at(12), csat=3,
        )  # fmt: skip
        s.add_all([a, b])
        await s.flush()
        for conv_id, author, minute in [
            (a.id, "subscriber", 0), (a.id, "operator", 0.5),
            (a.id, "subscriber", 1), (a.id, "subscriber", 1.5), (a.id, "operator", 2),
            (a.id, "subscriber", 4), (a.id, "operator", 6),
            (b.id, "subscriber", 10), (b.id, "operator", 11.5),
        ]:  # fmt: skip
            direction = "in" if author == "subscriber" else "out"
            s.add(
                Message(
                    conversation_id=conv_id, direction=direction, author=author,
                    text="…", created_at=at(minute),
                )
            )  # fmt: skip
        for conv_id, kind, to_state, minute in [
            (a.id, "assigned", "with_operator", 0.25),
            (b.id, "assigned", "with_operator", 10.1),
            (b.id, "missed", "queued", 10.4),
            (b.id, "assigned", "with_operator", 10.5),
        ]:
            s.add(
                ConversationEvent(
                    conversation_id=conv_id, kind=kind, to_state=to_state, data={}, at=at(minute)
                )
            )
    async with db.session() as s:
        view = await supervisor_view(
            s, groups=["consult"], timezone="Europe/Moscow", first_response_target=60, now=NOW
        )
    today = view["today"]
    assert today["first_responses"] == 2
    assert today["timely_first_response_pct"] == 50.0  # 30 s yes, 90 s no
    assert today["avg_first_response_s"] == 60.0  # (30 + 90) / 2
    # Inside the session (after the first reply): 1 -> 2 min (60 s, the earliest unanswered
    # message counts) and 4 -> 6 min (120 s).
    assert today["avg_response_in_session_s"] == 90.0
    assert today["responses_in_session"] == 2
    assert (today["assigned"], today["missed"], today["missed_pct"]) == (2, 1, 50.0)
    assert (today["rated"], today["csat_pct"], today["csat_avg"]) == (2, 50.0, 4.0)
