"""Who a subject request is about: one person, found by subscriber id, phone, account number or a
channel's user id, with every subscriber row that was merged into the same person.

Linking two channels (services/identity.py: `merge`) keeps the older subscriber and marks the
other `merged_into` it; both rows (and any merged earlier) are one person here, so an export or an
erasure always covers all of them.

Queries people type (the CLI argument, the console's search field):
- `id:17` or `#17`: a subscriber id;
- `phone:+7 916 123-45-67`, or any spelling of a phone: the subscriber's phone, a verification's
  phone, or the phone an SMS code went to;
- `account:1234567`: the subscriber's or a verification's account number;
- `telegram:123456` / `vk:123456`: the platform's user id of a channel account;
- bare digits: each of id, phone and account is tried; two different people found is an
  `AmbiguousPerson` (use a prefix), none a `PersonNotFound`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nlu.phones import normalise_phone
from storage.models import ChannelAccount, Subscriber, Verification, VerificationCode

CHANNELS = ("telegram", "vk")
_PREFIX = re.compile(r"^\s*(id|phone|account|telegram|vk)\s*:\s*(.+?)\s*$", re.IGNORECASE)
_MAX_HOPS = 50  # merged_into chains are short; this only stops a corrupt cycle


class PersonNotFound(LookupError):
    """Nobody matches the query."""


class AmbiguousPerson(LookupError):
    """The query matches more than one person; `candidates` are their primary subscriber ids."""

    def __init__(self, query: str, candidates: list[int]) -> None:
        ids = ", ".join(f"id:{c}" for c in candidates)
        super().__init__(f"{query!r} matches several people ({ids}): name one with id:<n>")
        self.candidates = candidates


@dataclass(frozen=True, slots=True)
class Person:
    """One person: `primary` is the subscriber the others were merged into (directly or not);
    `subscriber_ids` holds it first, then the merged ones in id order."""

    primary: int
    subscriber_ids: tuple[int, ...]


async def find_person(session: AsyncSession, query: str) -> Person:
    """The person `query` names (see the module docstring). Raises PersonNotFound or
    AmbiguousPerson."""
    found = await _matching_subscribers(session, query.strip())
    people: dict[int, Person] = {}
    for sub_id in sorted(found):
        person = await person_of(session, sub_id)
        people.setdefault(person.primary, person)
    if not people:
        raise PersonNotFound(f"nobody found for {query.strip()!r}")
    if len(people) > 1:
        raise AmbiguousPerson(query.strip(), sorted(people))
    return next(iter(people.values()))


async def person_of(session: AsyncSession, subscriber_id: int) -> Person:
    """The person subscriber `subscriber_id` belongs to (PersonNotFound if there is no such row)."""
    primary = subscriber_id
    seen = {primary}
    for _ in range(_MAX_HOPS):
        row = await session.get(Subscriber, primary)
        if row is None:
            raise PersonNotFound(f"no subscriber {subscriber_id}")
        if row.merged_into is None or row.merged_into in seen:
            break
        primary = row.merged_into
        seen.add(primary)
    members = [primary]
    frontier = {primary}
    for _ in range(_MAX_HOPS):
        more = set(
            (
                await session.scalars(
                    select(Subscriber.id).where(Subscriber.merged_into.in_(frontier))
                )
            ).all()
        ) - set(members)
        if not more:
            break
        members += sorted(more)
        frontier = more
    return Person(primary, (primary, *sorted(members[1:])))


async def _matching_subscribers(session: AsyncSession, query: str) -> set[int]:
    prefixed = _PREFIX.match(query)
    if prefixed:
        kind, value = prefixed.group(1).lower(), prefixed.group(2)
        if kind == "id":
            return await _by_id(session, value)
        if kind == "phone":
            return await _by_phone(session, value)
        if kind == "account":
            return await _by_account(session, value)
        return await _by_channel_user(session, kind, value)
    if query.startswith("#"):
        return await _by_id(session, query[1:])
    if not query:
        return set()
    found: set[int] = set()
    if query.isdigit():
        found |= await _by_id(session, query)
        found |= await _by_account(session, query)
    if normalise_phone(query) is not None:
        found |= await _by_phone(session, query)
    elif not query.isdigit():
        found |= await _by_account(session, query)
    return found


async def _by_id(session: AsyncSession, value: str) -> set[int]:
    value = value.strip()
    if not value.isdigit() or len(value) > 18:
        return set()
    row = await session.get(Subscriber, int(value))
    return {row.id} if row is not None else set()


async def _by_phone(session: AsyncSession, value: str) -> set[int]:
    spellings = {value.strip()} | ({p} if (p := normalise_phone(value)) else set())
    found = set(
        (await session.scalars(select(Subscriber.id).where(Subscriber.phone.in_(spellings)))).all()
    )
    found |= set(
        (
            await session.scalars(
                select(Verification.subscriber_id).where(Verification.phone.in_(spellings))
            )
        ).all()
    )
    found |= set(
        (
            await session.scalars(
                select(ChannelAccount.subscriber_id)
                .join(VerificationCode, VerificationCode.account_id == ChannelAccount.id)
                .where(VerificationCode.phone.in_(spellings))
            )
        ).all()
    )
    return found


async def _by_account(session: AsyncSession, value: str) -> set[int]:
    value = value.strip()
    if not value:
        return set()
    found = set(
        (
            await session.scalars(select(Subscriber.id).where(Subscriber.account_number == value))
        ).all()
    )
    found |= set(
        (
            await session.scalars(
                select(Verification.subscriber_id).where(Verification.account_number == value)
            )
        ).all()
    )
    return found


async def _by_channel_user(session: AsyncSession, channel: str, value: str) -> set[int]:
    return set(
        (
            await session.scalars(
                select(ChannelAccount.subscriber_id).where(
                    ChannelAccount.channel == channel,
                    ChannelAccount.external_user_id == value.strip(),
                )
            )
        ).all()
    )
