"""Verified identity: proof that whoever writes from a channel account is a given customer, before
the bot shows personal data or acts on an account (152-ФЗ, the secrecy of communications).

Ways to verify (the dialog engine runs the conversation, dialogs/verify.py; this module decides):
- **contact** (Telegram): the subscriber shares their own contact; accepted only when the
  contact's user id is the sender's own (a forwarded contact proves nothing);
- **sms**: a one-time code sent by SMS to the customer's number (`Backend.send_code`): 6 digits,
  `CODE_TTL` life, `CODE_TRIES` tries, only a hash stored, at most `CODES_PER_HOUR` codes per
  account and per number (counted in the database, so the limits hold across app processes);
- **secret**: a secret the operator already holds (code word; `Backend.check_secret`), for a
  lost or stolen phone.

No oracle: before verification nothing tells whether a number is a customer's. A number that is
nobody's gets the same answer as a real one ("если номер наш, придёт SMS"), and its code simply
never matches. A verification lasts `Policy.ttl` per account; a "fresh" one (step-up, for
blocking a number or changing a tariff) is younger than `Policy.fresh`. «выйти», «это не мой
номер» and unlinking revoke it. Every verification event goes to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.actions import Action, ActionContext
from dialogs.messages import SharedContact
from nlu.phones import normalise_phone
from services import audit
from services.backend import Backend, BackendContext, Customer, to_json
from storage import repo
from storage.models import (
    AuditEntry,
    ChannelAccount,
    Subscriber,
    Verification,
    VerificationCode,
    VerificationMethod,
)

LEVELS = ("none", "verified", "fresh")  # in order: each includes the one before
CODE_TTL = timedelta(minutes=5)
CODE_TRIES = 3
CODES_PER_HOUR = 3  # per account and per number
SECRET_TRIES = 3  # wrong secrets per account per hour before only a human can help
NOBODY = "-"  # customer id of a code sent for a number that is nobody's: it never matches


# The account's verification in force, newest first (built once: building costs more than running).
_CURRENT = (
    select(Verification)
    .where(
        Verification.account_id == bindparam("account_id"),
        Verification.subscriber_id == bindparam("subscriber_id"),
        Verification.revoked_at.is_(None),
        Verification.expires_at > bindparam("now"),
    )
    .order_by(Verification.verified_at.desc(), Verification.id.desc())
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class Policy:
    ttl: timedelta = timedelta(days=30)  # how long a verification lasts per account
    fresh: timedelta = timedelta(minutes=10)  # a step-up: verified this recently
    codes_per_hour: int = CODES_PER_HOUR  # SMS codes per account and per number


@dataclass(frozen=True, slots=True)
class Status:
    level: str  # "none" | "verified" | "fresh"
    customer: dict[str, Any] | None = None
    method: str | None = None
    verified_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt came to. `result`: verified | sent | limited | wrong | expired |
    too_many | no_code | not_own | unknown | unsupported."""

    result: str
    customer: dict[str, Any] | None = None
    minutes: int = int(CODE_TTL.total_seconds() // 60)


def level_at_least(have: str, need: str) -> bool:
    return LEVELS.index(have) >= LEVELS.index(need)


def code_hash(account_id: int, code: str) -> str:
    return hashlib.sha256(f"verify:{account_id}:{code}".encode()).hexdigest()


class Verifier:
    """Verification for the dialog engine (and the console), over the backend and the database.
    Nothing here commits: callers own the transaction."""

    def __init__(self, backend: Backend, policy: Policy | None = None) -> None:
        self.backend = backend
        self.policy = policy or Policy()

    # -- reading ---------------------------------------------------------------------------

    async def status(self, session: AsyncSession, account: ChannelAccount, now: datetime) -> Status:
        if repo.created_here(session, account):  # a first contact: never verified
            return Status("none")
        params = {"account_id": account.id, "subscriber_id": account.subscriber_id, "now": now}
        row = await session.scalar(_CURRENT, params)
        if row is None:
            return Status("none")
        customer = await self._customer(session, account, row.phone, row.account_number)
        if customer is None:  # the billing no longer knows them: not verified any more
            return Status("none")
        level = "fresh" if now - row.verified_at <= self.policy.fresh else "verified"
        return Status(level, to_json(customer), row.method, row.verified_at, row.expires_at)

    async def _customer(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        phone: str | None,
        number: str | None,
    ) -> Customer | None:
        ctx = BackendContext(session, account.channel, account.subscriber_id, 0)
        return await self.backend.find_customer(ctx, phone=phone, account=number)

    # -- the ways to verify ------------------------------------------------------------------

    async def by_contact(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        contact: SharedContact,
        *,
        conversation_id: int,
        now: datetime,
    ) -> Outcome:
        """A shared Telegram contact: the sender's own -> verified if the number is a customer's
        (they proved the number is theirs, so telling them it is not ours reveals nothing)."""
        if not contact.own:
            audit.record(session, "verify_refused", actor="bot", subscriber_id=account.subscriber_id,
                         conversation_id=conversation_id, details={"method": "contact", "why": "not_own"})  # fmt: skip
            return Outcome("not_own")
        phone = normalise_phone(contact.phone)
        customer = await self._customer(session, account, phone, None) if phone else None
        if customer is None:
            return Outcome("unknown")
        return await self._verified(
            session, account, customer, VerificationMethod.CONTACT, conversation_id, now
        )

    async def send_code(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        *,
        phone: str | None,
        number: str | None,
        conversation_id: int,
        now: datetime,
    ) -> Outcome:
        """A code by SMS to the customer with this phone or account number. The answer is the
        same whether the number is a customer's or not (no oracle); limits first."""
        await self._lock(session, account, phone or number or "")
        customer = await self._customer(session, account, phone, number)
        target = customer.phone if customer is not None else (phone or f"account:{number}")
        hour = now - timedelta(hours=1)
        mine = await session.scalar(
            select(func.count()).where(
                VerificationCode.account_id == account.id, VerificationCode.created_at > hour
            )
        )
        theirs = await session.scalar(
            select(func.count()).where(
                VerificationCode.phone == target, VerificationCode.created_at > hour
            )
        )
        limit = self.policy.codes_per_hour
        if (mine or 0) >= limit or (theirs or 0) >= limit:
            audit.record(session, "verify_limited", actor="bot", subscriber_id=account.subscriber_id,
                         conversation_id=conversation_id, details={"method": "sms"})  # fmt: skip
            return Outcome("limited")
        await session.execute(  # a new code replaces this account's earlier ones
            update(VerificationCode)
            .where(VerificationCode.account_id == account.id, VerificationCode.used_at.is_(None))
            .values(expires_at=now)
        )
        code = f"{secrets.randbelow(10**6):06d}"
        session.add(
            VerificationCode(
                account_id=account.id,
                phone=target,
                customer_id=customer.id if customer is not None else NOBODY,
                code_hash=code_hash(account.id, code),
                created_at=now,
                expires_at=now + CODE_TTL,
            )
        )
        if customer is not None:
            ctx = BackendContext(session, account.channel, account.subscriber_id, conversation_id)
            await self.backend.send_code(
                ctx, customer.phone, code
            )  # BackendError: the flow says so
        audit.record(session, "verify_code_sent", actor="bot", subscriber_id=account.subscriber_id,
                     conversation_id=conversation_id, details={"method": "sms"})  # fmt: skip
        return Outcome("sent")

    async def check_code(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        code: str,
        *,
        conversation_id: int,
        now: datetime,
    ) -> Outcome:
        row = await session.scalar(
            select(VerificationCode)
            .where(VerificationCode.account_id == account.id, VerificationCode.used_at.is_(None))
            .order_by(VerificationCode.id.desc())
            .limit(1)
            .with_for_update()
        )
        if row is None:
            return Outcome("no_code")
        if row.expires_at <= now:
            return Outcome("expired")
        if row.attempts >= CODE_TRIES:
            return Outcome("too_many")
        right = hmac.compare_digest(row.code_hash, code_hash(account.id, code.strip()))
        if not right or row.customer_id == NOBODY:
            row.attempts += 1
            audit.record(session, "verify_wrong_code", actor="bot", subscriber_id=account.subscriber_id,
                         conversation_id=conversation_id, details={"attempt": row.attempts})  # fmt: skip
            return Outcome("too_many" if row.attempts >= CODE_TRIES else "wrong")
        row.used_at = now
        customer = await self._customer(session, account, row.phone, None)
        if customer is None:
            return Outcome("unknown")
        return await self._verified(
            session, account, customer, VerificationMethod.SMS, conversation_id, now
        )

    async def check_secret(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        answer: str,
        *,
        phone: str | None,
        number: str | None,
        conversation_id: int,
        now: datetime,
    ) -> Outcome:
        """A secret the operator holds (code word) for the customer with this phone or account
        number. Wrong and unknown look the same; SECRET_TRIES per hour, then only a human."""
        await self._lock(session, account, "secret")
        failed = await session.scalar(
            select(func.count()).where(
                AuditEntry.subscriber_id == account.subscriber_id,
                AuditEntry.action == "verify_wrong_secret",
                AuditEntry.at > now - timedelta(hours=1),
            )
        )
        if (failed or 0) >= SECRET_TRIES:
            return Outcome("too_many")
        customer = await self._customer(session, account, phone, number)
        ok = False
        if customer is not None:
            ctx = BackendContext(session, account.channel, account.subscriber_id, conversation_id)
            ok = await self.backend.check_secret(ctx, customer, answer)
        if not ok or customer is None:
            audit.record(session, "verify_wrong_secret", actor="bot", subscriber_id=account.subscriber_id,
                         conversation_id=conversation_id)  # fmt: skip
            return Outcome("wrong")
        return await self._verified(
            session, account, customer, VerificationMethod.SECRET, conversation_id, now
        )

    async def revoke(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        reason: str,
        *,
        now: datetime,
        conversation_id: int | None = None,
    ) -> int:
        """End this account's verifications (and forget the customer on the subscriber)."""
        done = await session.execute(
            update(Verification)
            .where(Verification.account_id == account.id, Verification.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason[:32])
        )
        sub = await session.get(Subscriber, account.subscriber_id)
        if sub is not None and "customer" in sub.data:
            sub.data = {k: v for k, v in sub.data.items() if k != "customer"}
        count = int(done.rowcount or 0)  # type: ignore[attr-defined]
        audit.record(session, "verify_revoked", actor="bot", subscriber_id=account.subscriber_id,
                     conversation_id=conversation_id, details={"reason": reason, "count": count})  # fmt: skip
        return count

    # -- internals ---------------------------------------------------------------------------

    async def _verified(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        customer: Customer,
        method: str,
        conversation_id: int,
        now: datetime,
    ) -> Outcome:
        session.add(
            Verification(
                account_id=account.id,
                subscriber_id=account.subscriber_id,
                customer_id=customer.id,
                phone=customer.phone,
                account_number=customer.account,
                method=method,
                verified_at=now,
                expires_at=now + self.policy.ttl,
            )
        )
        sub = await session.get(Subscriber, account.subscriber_id)
        if sub is not None:  # who they are, for linking and for operators (shown masked)
            sub.phone, sub.account_number = customer.phone, customer.account
            sub.data = {**sub.data, "customer": to_json(customer)}
        audit.record(session, "verified", actor="bot", subscriber_id=account.subscriber_id,
                     conversation_id=conversation_id, details={"method": method})  # fmt: skip
        return Outcome("verified", to_json(customer))

    async def _lock(self, session: AsyncSession, account: ChannelAccount, key: str) -> None:
        """Serialise attempts for one account and one number across app processes (PostgreSQL
        advisory locks; SQLite has a single writer anyway)."""
        if session.get_bind().dialect.name != "postgresql":
            return
        for part in (f"account:{account.id}", f"number:{key}"):
            digest = int.from_bytes(hashlib.sha256(part.encode()).digest()[:8], "big", signed=True)
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": digest})


def verification_actions(verifier: Verifier) -> list[Action]:
    """«выйти», «это не мой номер»: `call: logout` forgets who they are (its result, None,
    lands in `customer`)."""

    async def logout(call: ActionContext) -> None:
        await verifier.revoke(
            call.session,
            call.account,
            "logout",
            now=call.now,
            conversation_id=call.conversation_id,
        )

    return [
        Action("logout", logout, into="customer", fixed=True, doc="revoke the verification"),
    ]
