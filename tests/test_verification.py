"""Verified identity (services/verification.py) on SQLite and PostgreSQL: SMS codes (life, tries,
hashing, limits per account and per number), no oracle for unknown numbers, a shared contact
(own or not), the code word, step-up freshness, revocation; and the limits holding when two app
processes ask at once (PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dialogs.messages import SharedContact
from services.backend.demo import DemoBackend
from services.verification import CODE_TTL, Policy, Verifier, code_hash
from storage.db import Database
from storage.models import (
    AuditEntry,
    ChannelAccount,
    DemoSms,
    Subscriber,
    Verification,
    VerificationCode,
    utcnow,
)
from tests.audience import Person, seed
from tests.conftest import PG_URL

ANNA, NOBODY = "+79110000001", "+79990001122"
backend = DemoBackend()


@pytest.fixture
async def person(db: Database) -> Database:
    await backend.prepare(db)
    await seed(db, [Person((("telegram", 11),)), Person((("vk", 21),))])
    return db


async def account(db: Database, chat: str = "11") -> ChannelAccount:
    async with db.session() as s:
        found = await s.scalar(select(ChannelAccount).where(ChannelAccount.chat_id == chat))
    assert found is not None
    return found


async def last_sms(db: Database, phone: str) -> str | None:
    async with db.session() as s:
        text = await s.scalar(
            select(DemoSms.text).where(DemoSms.phone == phone).order_by(DemoSms.id.desc()).limit(1)
        )
    return text.split(": ", 1)[1][:6] if text else None


async def send(db: Database, v: Verifier, chat: str, **claim: str) -> str:
    acc = await account(db, chat)
    async with db.transaction() as s:
        acc = await s.get(ChannelAccount, acc.id)
        assert acc is not None
        outcome = await v.send_code(
            s, acc, phone=claim.get("phone"), number=claim.get("account"),
            conversation_id=0, now=utcnow(),
        )  # fmt: skip
    return outcome.result


async def check(
    db: Database, v: Verifier, chat: str, code: str, *, at: timedelta = timedelta()
) -> str:
    acc = await account(db, chat)
    async with db.transaction() as s:
        acc = await s.get(ChannelAccount, acc.id)
        assert acc is not None
        outcome = await v.check_code(s, acc, code, conversation_id=0, now=utcnow() + at)
    return outcome.result


async def level(db: Database, v: Verifier, chat: str = "11", *, at: timedelta = timedelta()) -> str:
    acc = await account(db, chat)
    async with db.session() as s:
        return (await v.status(s, acc, utcnow() + at)).level


async def test_an_sms_code_verifies_and_only_its_hash_is_kept(person: Database) -> None:
    db, v = person, Verifier(backend)
    assert await level(db, v) == "none"
    assert await send(db, v, "11", account="100200301") == "sent"  # by account number
    code = await last_sms(db, ANNA)
    assert code is not None and code.isdigit() and len(code) == 6
    async with db.session() as s:
        row = await s.scalar(select(VerificationCode))
    assert row is not None and code not in row.code_hash  # only a hash at rest
    assert row.code_hash == code_hash((await account(db)).id, code)
    assert await check(db, v, "11", code) == "verified"
    assert await level(db, v) == "fresh"
    assert await level(db, v, at=timedelta(minutes=11)) == "verified"  # step-up needs a new one
    assert await level(db, v, at=timedelta(days=31)) == "none"  # it lasts the policy's ttl
    async with db.session() as s:
        sub = await s.scalar(
            select(Subscriber).join(ChannelAccount).where(ChannelAccount.chat_id == "11")
        )
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert sub is not None and sub.phone == ANNA
    assert actions == ["verify_code_sent", "verified"]


async def test_wrong_codes_three_tries_then_burned_and_expiry(person: Database) -> None:
    db, v = person, Verifier(backend)
    await send(db, v, "11", phone=ANNA)
    code = await last_sms(db, ANNA)
    assert code is not None
    wrong = "000000" if code != "000000" else "111111"
    assert await check(db, v, "11", wrong) == "wrong"
    assert await check(db, v, "11", wrong) == "wrong"
    assert await check(db, v, "11", wrong) == "too_many"
    assert await check(db, v, "11", code) == "too_many"  # burned: even the right one now
    assert await level(db, v) == "none"
    await send(db, v, "11", phone=ANNA)  # a new code ...
    fresh = await last_sms(db, ANNA)
    assert fresh is not None
    assert await check(db, v, "11", fresh, at=CODE_TTL + timedelta(seconds=1)) == "expired"
    assert await level(db, v) == "none"


async def test_no_oracle_an_unknown_number_looks_the_same_and_never_verifies(
    person: Database,
) -> None:
    db, v = person, Verifier(backend)
    assert await send(db, v, "11", phone=NOBODY) == "sent"  # the same answer as for a customer
    async with db.session() as s:
        sms = await s.scalar(select(func.count()).select_from(DemoSms))
    assert sms == 0  # nothing was sent anywhere
    for guess in ("123456", "000000", "654321"):
        assert await check(db, v, "11", guess) in ("wrong", "too_many")
    assert await level(db, v) == "none"


async def test_limits_per_account_and_per_number(person: Database) -> None:
    db, v = person, Verifier(backend, Policy(codes_per_hour=3))
    for _ in range(3):
        assert await send(db, v, "11", phone=ANNA) == "sent"
    assert await send(db, v, "11", phone=ANNA) == "limited"  # this account: 3 an hour
    assert await send(db, v, "21", phone=ANNA) == "limited"  # that number: 3 an hour, anywhere
    assert await send(db, v, "21", phone="+79110000005") == "sent"  # another number is fine


async def test_a_shared_contact_counts_only_when_it_is_ones_own(person: Database) -> None:
    db, v = person, Verifier(backend)
    acc = await account(db)
    async with db.transaction() as s:
        acc = await s.get(ChannelAccount, acc.id)
        assert acc is not None
        forwarded = SharedContact(ANNA, own=False, user_id="999")
        assert (
            await v.by_contact(s, acc, forwarded, conversation_id=0, now=utcnow())
        ).result == "not_own"
        stranger = SharedContact(NOBODY, own=True, user_id="11")
        assert (
            await v.by_contact(s, acc, stranger, conversation_id=0, now=utcnow())
        ).result == "unknown"
        own = SharedContact("8 911 000-00-01", own=True, user_id="11")
        done = await v.by_contact(s, acc, own, conversation_id=0, now=utcnow())
    assert done.result == "verified" and done.customer is not None
    assert done.customer["name"] == "Анна"
    assert await level(db, v) == "fresh"


async def test_the_code_word_for_a_lost_phone_and_revocation(person: Database) -> None:
    db, v = person, Verifier(backend)
    acc = await account(db)

    async def secret(answer: str) -> str:
        async with db.transaction() as s:
            a = await s.get(ChannelAccount, acc.id)
            assert a is not None
            outcome = await v.check_secret(
                s, a, answer, phone=ANNA, number=None, conversation_id=0, now=utcnow()
            )
        return outcome.result

    assert await secret("лютик") == "wrong"
    assert await secret("Ромашка!") == "verified"
    assert await level(db, v) == "fresh"
    async with db.transaction() as s:
        a = await s.get(ChannelAccount, acc.id)
        assert a is not None
        assert await v.revoke(s, a, "logout", now=utcnow()) == 1
    assert await level(db, v) == "none"
    async with db.session() as s:
        revoked = await s.scalar(select(Verification.revoked_reason))
    assert revoked == "logout"


async def test_three_wrong_code_words_an_hour_then_only_a_human(person: Database) -> None:
    db, v = person, Verifier(backend)
    acc = await account(db)
    results = []
    for answer in ("раз", "два", "три", "ромашка"):
        async with db.transaction() as s:
            a = await s.get(ChannelAccount, acc.id)
            assert a is not None
            results.append(
                (await v.check_secret(s, a, answer, phone=ANNA, number=None,
                                      conversation_id=0, now=utcnow())).result
            )  # fmt: skip
    assert results == ["wrong", "wrong", "wrong", "too_many"]


@pytest.mark.postgres
async def test_the_limits_hold_across_two_app_processes(pg_two: tuple[Database, Database]) -> None:
    """Two processes (two connection pools) ask for codes for one number at the same moment:
    advisory locks serialise them, so no more than the limit go out."""
    a, b = pg_two
    await backend.prepare(a)
    await seed(a, [Person((("telegram", 11),)), Person((("vk", 21),))])
    v = Verifier(backend, Policy(codes_per_hour=3))
    results = await asyncio.gather(
        *(send(db, v, chat, phone=ANNA) for db, chat in [(a, "11"), (b, "21")] * 4)
    )
    assert results.count("sent") == 3 and results.count("limited") == 5
    async with a.session() as s:
        sent = await s.scalar(select(func.count()).select_from(DemoSms))
    assert sent == 3


@pytest.fixture
async def pg_two() -> object:
    from tests.conftest import fresh_postgres

    first = await fresh_postgres()
    second = Database(PG_URL)
    try:
        yield first, second
    finally:
        await second.dispose()
        await first.dispose()
