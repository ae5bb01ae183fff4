"""The DEMO billing/CRM: a stand-in for the operator's real systems, used by the sandbox and the tests.

It keeps its data in the bot's own database (the `demo_*` tables in storage/models.py) and works
inside the pipeline's transaction (`ctx.session`): it executes and flushes, never commits.
`DemoBackend.prepare(db)` seeds it idempotently (safe at every start, from several processes):

- 7 tariffs: mobile "Мой онлайн" 450 ₽, "Мой разговор" 350 ₽, "Безлимит+" 750 ₽,
  "Классический" 200 ₽; home "Дом 100" 500 ₽, "Дом 500 + ТВ" 850 ₽, "Дом 1000" 990 ₽;
- 6 subscribers in Пушкин (Царское Село, St Petersburg), phones +7911000000N and accounts
  10020030N for N = 1..6: Анна (mobile + home internet), Игорь (in debt: promised payment
  available), Мария (a promised payment already active), Олег (lives on Октябрьский бульвар,
  where an outage is going on), Дмитрий (plenty of money), Елена (mobile only);
- one open outage on Октябрьский бульвар, its fix always about 3 hours ahead at start-up.

Changes made through the bot (tariff changes, promised payments) stay until the tables are
emptied; `prepare` only inserts what is missing and keeps Мария's promise and the outage current.

An integrator replaces all of this with their own `Backend` (services/backend/__init__.py) and
names it in `SUPPORTBOT_BACKEND=package.module:ClassName`.
"""

from __future__ import annotations

import hmac
import math
import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nlu.address import area_key
from nlu.entities import normalise_phone
from services.backend import (
    BackendContext,
    BackendError,
    Balance,
    Customer,
    Office,
    Outage,
    PromisedPayment,
    PromisedPaymentOffer,
    Tariff,
    TariffChange,
    TicketReceipt,
    TicketState,
)
from storage.db import Database
from storage.models import DemoCustomer, DemoOutage, DemoSms, DemoTariff, DemoTicket, utcnow
from storage.repo import dialect_insert

__all__ = ["MOSCOW", "DemoBackend", "area_of"]


def _moscow() -> tzinfo:
    try:
        return ZoneInfo("Europe/Moscow")
    except ZoneInfoNotFoundError:  # no tz database (slim images): Moscow is UTC+3 all year
        return timezone(timedelta(hours=3), "MSK")


MOSCOW = _moscow()  # the subscribers' clock: "today", "tomorrow", visit windows

PROMISE_DAYS = 3
PROMISE_MIN, PROMISE_MAX, PROMISE_STEP = 100, 1500, 50
PROMISE_FREE_UP_TO = 100  # roubles; larger promises cost PROMISE_FEE
PROMISE_FEE = 10.0

TICKET_PREFIX = {"technician_visit": "TV", "complaint": "C", "block_number": "B"}
TICKET_DUE = {
    "complaint": timedelta(hours=24),
    "block_number": timedelta(minutes=15),
}
TICKET_DUE_OTHER = timedelta(hours=48)
VISIT_DEFAULT_END = time(18, 0)  # a visit without a chosen window: by tomorrow 18:00 Moscow


# --- addresses --------------------------------------------------------------------------------


def area_of(address: str) -> str | None:
    """The outage area key of a free-form Russian address: its street (nlu/address.py), the same
    rule our own detection uses. "Пушкин, ул. Садовая, д. 12, кв. 5" and "садовая 12" ->
    "садовая"; "Октябрьский бульвар 20" and "б-р Октябрьский, д.20" -> "октябрьский"."""
    return area_key(address)


# --- seed data --------------------------------------------------------------------------------

_TARIFFS: list[dict[str, Any]] = [
    {
        "code": "m_online",
        "name": "Мой онлайн",
        "price": 450.0,
        "summary": "30 ГБ, 600 мин, безлимит на мессенджеры и соцсети",
        "kind": "mobile",
        "sort": 1,
    },
    {
        "code": "m_talk",
        "name": "Мой разговор",
        "price": 350.0,
        "summary": "1200 мин на все номера России и 10 ГБ",
        "kind": "mobile",
        "sort": 2,
    },
    {
        "code": "m_unlim",
        "name": "Безлимит+",
        "price": 750.0,
        "summary": "Безлимитный интернет, 1000 мин, раздача до 20 ГБ",
        "kind": "mobile",
        "sort": 3,
    },
    {
        "code": "m_classic",
        "name": "Классический",
        "price": 200.0,
        "summary": "300 мин и 3 ГБ: для звонков близким",
        "kind": "mobile",
        "sort": 4,
    },
    {
        "code": "h_100",
        "name": "Дом 100",
        "price": 500.0,
        "summary": "Домашний интернет до 100 Мбит/с",
        "kind": "home",
        "sort": 1,
    },
    {
        "code": "h_500tv",
        "name": "Дом 500 + ТВ",
        "price": 850.0,
        "summary": "Интернет до 500 Мбит/с и 150 ТВ-каналов",
        "kind": "home",
        "sort": 2,
    },
    {
        "code": "h_1000",
        "name": "Дом 1000",
        "price": 990.0,
        "summary": "Интернет до 1 Гбит/с, Wi-Fi-роутер в подарок",
        "kind": "home",
        "sort": 3,
    },
]

# The salons (content/dialogs/service.yml says the same in words).
OFFICES = (
    ("ул. Оранжерейная, 32", "ежедневно 9:00–21:00", "есть терминал для оплаты"),
    ("Октябрьский бульвар, 24", "ежедневно 10:00–20:00", "есть терминал для оплаты"),
    ("ТЦ «Пушкинский», Софийский бульвар, 2", "10:00–22:00", "есть терминал для оплаты"),
)
# The demo customers' code words (what a real CRM keeps for a lost phone), by phone.
CODE_WORDS = {
    "+79110000001": "ромашка",
    "+79110000002": "гитара",
    "+79110000003": "ласточка",
    "+79110000004": "маяк",
    "+79110000005": "сапсан",
    "+79110000006": "янтарь",
}
_MARIA_PHONE = "+79110000003"
_MARIA_PROMISE_DAYS = 2  # her promise always has this many days left after `prepare`
_OUTAGE_REF = "demo-oktyabrsky"
_OUTAGE_ADDRESS = "Пушкин, Октябрьский бульвар"
_OUTAGE_ETA = timedelta(hours=3)


def _customers(today: date) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        # An ordinary subscriber with mobile and home internet; not enough for the next charge.
        {
            "name": "Анна",
            "phone": "+79110000001",
            "account": "100200301",
            "address": "Пушкин, ул. Садовая, д. 12, кв. 5",
            "balance": 350.50,
            "tariff_code": "m_online",
            "home_tariff_code": "h_100",
        },
        # In debt: a promised payment is offered.
        {
            "name": "Игорь",
            "phone": "+79110000002",
            "account": "100200302",
            "address": None,
            "balance": -120.0,
            "tariff_code": "m_talk",
            "home_tariff_code": None,
        },
        # Already took a promised payment: a second one is refused with the date.
        {
            "name": "Мария",
            "phone": _MARIA_PHONE,
            "account": "100200303",
            "address": None,
            "balance": 180.0,
            "tariff_code": "m_online",
            "home_tariff_code": None,
            "promised_until": today + timedelta(days=_MARIA_PROMISE_DAYS),
        },
        # Lives where the seeded outage is: "no internet" gets the outage and its ETA.
        {
            "name": "Олег",
            "phone": "+79110000004",
            "account": "100200304",
            "address": "Пушкин, Октябрьский бульвар, д. 20, кв. 14",
            "balance": 620.0,
            "tariff_code": "m_classic",
            "home_tariff_code": "h_1000",
        },
        # Plenty of money: no promised payment needed.
        {
            "name": "Дмитрий",
            "phone": "+79110000005",
            "account": "100200305",
            "address": "Пушкин, Ленинградская ул., д. 35, кв. 2",
            "balance": 2450.0,
            "tariff_code": "m_unlim",
            "home_tariff_code": "h_500tv",
        },
        # Mobile only, a little money left.
        {
            "name": "Елена",
            "phone": "+79110000006",
            "account": "100200306",
            "address": None,
            "balance": 540.0,
            "tariff_code": "m_classic",
            "home_tariff_code": None,
        },
    ]
    for row in rows:
        row.setdefault("promised_until", None)
        row["area"] = area_of(row["address"]) if row["address"] else None
    return rows


# --- helpers ----------------------------------------------------------------------------------


def _today() -> date:
    return datetime.now(MOSCOW).date()


def _first_of_next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _tariff(row: DemoTariff) -> Tariff:
    return Tariff(code=row.code, name=row.name, price=row.price, summary=row.summary, kind=row.kind)


def _customer(row: DemoCustomer) -> Customer:
    return Customer(
        id=str(row.id),
        name=row.name,
        phone=row.phone,
        account=row.account,
        address=row.address,
        area=row.area,
    )


def _promise_active(row: DemoCustomer, today: date) -> bool:
    return row.promised_until is not None and row.promised_until >= today


def _visit_due(window: Any) -> datetime:
    """The end of the chosen visit window (Moscow time) as aware UTC."""
    if window is None:
        day = _today() + timedelta(days=1)
        return datetime.combine(day, VISIT_DEFAULT_END, MOSCOW).astimezone(UTC)
    try:
        day = date.fromisoformat(window["date"])
        end = time.fromisoformat(window["to"])
    except (TypeError, KeyError, ValueError) as exc:
        raise BackendError(f"bad visit window {window!r}: {exc}", "bad_window") from exc
    return datetime.combine(day, end, MOSCOW).astimezone(UTC)


def _state(row: DemoTicket) -> TicketState:
    """What the demo CRM says about a ticket (a real one would name the technician)."""
    window = row.details.get("window") if isinstance(row.details, dict) else None
    note = None
    if row.status == "open" and row.kind == "technician_visit":
        when = (
            f"{window.get('date')} с {window.get('from')} до {window.get('to')}"
            if isinstance(window, dict)
            else "в течение суток"
        )
        note = f"мастер назначен, приедет {when} и позвонит за час до приезда"
    elif row.status == "open" and row.kind == "complaint":
        note = "жалоба у специалиста, разбираемся"
    elif row.status == "open":
        note = "заявка в работе"
    assert row.number is not None
    return TicketState(row.number, row.kind, row.status, row.due_at, dict(row.details), note)


class DemoBackend:
    """The demo `Backend`: seeded subscribers, tariffs and an outage in the bot's database."""

    async def prepare(self, db: Database) -> None:
        """Seed what is missing; keep Мария's promise and the outage in the future."""
        now = utcnow()
        today = _today()
        async with db.session() as s, s.begin():
            await s.execute(dialect_insert(s, DemoTariff).values(_TARIFFS).on_conflict_do_nothing())
            await s.execute(
                dialect_insert(s, DemoCustomer).values(_customers(today)).on_conflict_do_nothing()
            )
            await s.execute(
                dialect_insert(s, DemoOutage)
                .values(
                    ref=_OUTAGE_REF,
                    area=area_of(_OUTAGE_ADDRESS),
                    description="Авария на магистральном кабеле, бригада уже на месте",
                    eta=now + _OUTAGE_ETA,
                    started_at=now,
                )
                .on_conflict_do_nothing()
            )
            await s.execute(
                update(DemoOutage)
                .where(
                    DemoOutage.ref == _OUTAGE_REF,
                    or_(
                        DemoOutage.eta.is_(None),
                        DemoOutage.eta < now,
                        DemoOutage.closed_at.is_not(None),
                    ),
                )
                .values(eta=now + _OUTAGE_ETA, started_at=now, closed_at=None)
            )
            await s.execute(
                update(DemoCustomer)
                .where(
                    DemoCustomer.phone == _MARIA_PHONE,
                    or_(DemoCustomer.promised_until.is_(None), DemoCustomer.promised_until < today),
                )
                .values(promised_until=today + timedelta(days=_MARIA_PROMISE_DAYS))
            )

    async def reset(self, db: Database) -> None:
        """Put every demo subscriber back as seeded (balance, tariffs, promised payment): each
        conversation test then starts from the same billing (supportbot/storydriver.py)."""
        async with db.transaction() as s:
            for row in _customers(_today()):
                await s.execute(
                    update(DemoCustomer)
                    .where(DemoCustomer.phone == row["phone"])
                    .values(
                        balance=row["balance"],
                        tariff_code=row["tariff_code"],
                        home_tariff_code=row["home_tariff_code"],
                        promised_until=row["promised_until"],
                    )
                )

    async def _row(
        self, session: AsyncSession, customer: Customer, *, lock: bool = False
    ) -> DemoCustomer:
        if not customer.id.isdigit():
            raise BackendError(f"no demo customer {customer.id!r}", "unknown_customer")
        stmt = select(DemoCustomer).where(DemoCustomer.id == int(customer.id))
        if lock:
            stmt = stmt.with_for_update()
        row = (await session.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise BackendError(f"no demo customer {customer.id}", "unknown_customer")
        return row

    async def _monthly_fee(self, session: AsyncSession, row: DemoCustomer) -> float:
        codes = [c for c in (row.tariff_code, row.home_tariff_code) if c]
        prices = (
            await session.execute(select(DemoTariff.price).where(DemoTariff.code.in_(codes)))
        ).scalars()
        return round(sum(prices), 2)

    async def find_customer(
        self, ctx: BackendContext, *, phone: str | None = None, account: str | None = None
    ) -> Customer | None:
        conditions = []
        if phone and (normalised := normalise_phone(phone)):
            conditions.append(DemoCustomer.phone == normalised)
        if account and (digits := re.sub(r"\D", "", account)):
            conditions.append(DemoCustomer.account == digits)
        for condition in conditions:  # the phone wins if both are given
            row = (await ctx.session.execute(select(DemoCustomer).where(condition))).scalar()
            if row is not None:
                return _customer(row)
        return None

    async def balance(self, ctx: BackendContext, customer: Customer) -> Balance:
        row = await self._row(ctx.session, customer)
        today = _today()
        return Balance(
            amount=round(row.balance, 2),
            monthly_fee=await self._monthly_fee(ctx.session, row),
            next_charge=_first_of_next_month(today),
            promised_payment_until=row.promised_until if _promise_active(row, today) else None,
        )

    async def current_tariff(self, ctx: BackendContext, customer: Customer) -> Tariff:
        row = await self._row(ctx.session, customer)
        tariff = await ctx.session.get(DemoTariff, row.tariff_code)
        assert tariff is not None  # a foreign key
        return _tariff(tariff)

    async def home_tariff(self, ctx: BackendContext, customer: Customer) -> Tariff | None:
        row = await self._row(ctx.session, customer)
        if row.home_tariff_code is None:
            return None
        tariff = await ctx.session.get(DemoTariff, row.home_tariff_code)
        return _tariff(tariff) if tariff is not None else None

    async def tariffs(self, ctx: BackendContext) -> list[Tariff]:
        rows = (await ctx.session.execute(select(DemoTariff))).scalars()
        # Mobile first (what most people ask about), then home; each in the catalogue's order.
        return [_tariff(t) for t in sorted(rows, key=lambda t: (t.kind != "mobile", t.sort))]

    async def change_tariff(
        self, ctx: BackendContext, customer: Customer, code: str
    ) -> TariffChange:
        tariff = await ctx.session.get(DemoTariff, code)
        if tariff is None:
            raise BackendError(f"unknown tariff code {code!r}", "unknown_tariff")
        row = await self._row(ctx.session, customer, lock=True)
        if tariff.kind == "home":
            if row.home_tariff_code is None:
                raise BackendError(
                    f"customer {row.id} has no home connection", "no_home_connection"
                )
            if row.home_tariff_code == code:
                raise BackendError(f"customer {row.id} already has {code}", "same_tariff")
            row.home_tariff_code = code
        else:
            if row.tariff_code == code:
                raise BackendError(f"customer {row.id} already has {code}", "same_tariff")
            row.tariff_code = code
        await ctx.session.flush()
        return TariffChange(tariff=_tariff(tariff), effective=_today() + timedelta(days=1))

    async def _offer(self, session: AsyncSession, row: DemoCustomer) -> PromisedPaymentOffer:
        today = _today()
        if row.promised_until is not None and row.promised_until >= today:
            return PromisedPaymentOffer(
                available=False,
                amount=0.0,
                days=PROMISE_DAYS,
                fee=0.0,
                reason=f"Обещанный платёж уже подключён до {row.promised_until:%d.%m}",
            )
        fee = await self._monthly_fee(session, row)
        if row.balance >= fee:
            return PromisedPaymentOffer(
                available=False,
                amount=0.0,
                days=PROMISE_DAYS,
                fee=0.0,
                reason="На счёте хватает денег, обещанный платёж не нужен 🙂",
            )
        needed = math.ceil(round(fee - row.balance, 2) / PROMISE_STEP) * PROMISE_STEP
        amount = float(min(max(needed, PROMISE_MIN), PROMISE_MAX))
        return PromisedPaymentOffer(
            available=True,
            amount=amount,
            days=PROMISE_DAYS,
            fee=0.0 if amount <= PROMISE_FREE_UP_TO else PROMISE_FEE,
        )

    async def promised_payment_offer(
        self, ctx: BackendContext, customer: Customer
    ) -> PromisedPaymentOffer:
        return await self._offer(ctx.session, await self._row(ctx.session, customer))

    async def take_promised_payment(
        self, ctx: BackendContext, customer: Customer
    ) -> PromisedPayment:
        row = await self._row(ctx.session, customer, lock=True)
        offer = await self._offer(ctx.session, row)
        if not offer.available:
            raise BackendError(f"promised payment not available: {offer.reason}", "not_available")
        until = _today() + timedelta(days=offer.days)
        row.balance = round(row.balance + offer.amount, 2)
        row.promised_until = until
        await ctx.session.flush()
        return PromisedPayment(amount=offer.amount, until=until, fee=offer.fee)

    async def create_ticket(
        self, ctx: BackendContext, kind: str, customer: Customer | None, details: dict[str, Any]
    ) -> TicketReceipt:
        now = utcnow()
        if kind == "technician_visit":
            due_at = _visit_due(details.get("window"))
        else:
            due_at = now + TICKET_DUE.get(kind, TICKET_DUE_OTHER)
        ticket = DemoTicket(
            kind=kind,
            customer_id=int(customer.id) if customer else None,
            details=dict(details),
            due_at=due_at,
            created_at=now,
        )
        ctx.session.add(ticket)
        await ctx.session.flush()  # the id is the sequence: unique across processes
        ticket.number = f"{TICKET_PREFIX.get(kind, 'T')}-{ticket.id:06d}"
        await ctx.session.flush()
        return TicketReceipt(number=ticket.number, kind=kind, due_at=due_at, details=dict(details))

    async def offices(self, ctx: BackendContext) -> list[Office]:
        return [Office(address, hours, area_of(address), note) for address, hours, note in OFFICES]

    # -- verified identity ---------------------------------------------------------------------

    async def send_code(self, ctx: BackendContext, phone: str, code: str) -> None:
        """The demo's SMS gateway: the message is stored (the sandbox and GET /sandbox/sms
        show it), as a real gateway would deliver it."""
        text = f"Код для чата поддержки: {code}. Никому его не сообщайте, даже сотрудникам."
        ctx.session.add(DemoSms(phone=phone, text=text, at=utcnow()))
        await ctx.session.flush()

    async def check_secret(self, ctx: BackendContext, customer: Customer, answer: str) -> bool:
        word = CODE_WORDS.get(customer.phone)
        given = " ".join(answer.lower().replace("ё", "е").split()).strip(' .!«»"')
        return word is not None and hmac.compare_digest(given.encode(), word.encode())

    # -- requests already made ----------------------------------------------------------------

    async def _ticket(self, ctx: BackendContext, number: str, *, lock: bool = False) -> DemoTicket:
        query = select(DemoTicket).where(DemoTicket.number == number)
        row = await ctx.session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise BackendError(f"no ticket {number!r}", "no_ticket")
        return row

    async def ticket_state(self, ctx: BackendContext, number: str) -> TicketState:
        return _state(await self._ticket(ctx, number))

    async def reschedule_visit(
        self, ctx: BackendContext, number: str, window: dict[str, Any]
    ) -> TicketState:
        row = await self._ticket(ctx, number, lock=True)
        if row.kind != "technician_visit":
            raise BackendError(f"{number} is not a technician visit", "not_a_visit")
        if row.status != "open":
            raise BackendError(f"{number} is {row.status}", "closed")
        row.due_at = _visit_due(window)
        row.details = {**row.details, "window": dict(window)}
        row.updated_at = utcnow()
        await ctx.session.flush()
        return _state(row)

    async def cancel_ticket(
        self, ctx: BackendContext, number: str, reason: str | None = None
    ) -> TicketState:
        row = await self._ticket(ctx, number, lock=True)
        if row.status != "open":
            raise BackendError(f"{number} is {row.status}", "closed")
        row.status, row.updated_at = "cancelled", utcnow()
        row.details = {**row.details, "cancel_reason": reason}
        await ctx.session.flush()
        return _state(row)

    async def comment_ticket(self, ctx: BackendContext, number: str, text: str) -> TicketState:
        row = await self._ticket(ctx, number, lock=True)
        if row.status != "open":
            raise BackendError(f"{number} is {row.status}", "closed")
        comments = [*row.details.get("comments", []), {"at": utcnow().isoformat(), "text": text}]
        row.details, row.updated_at = {**row.details, "comments": comments}, utcnow()
        await ctx.session.flush()
        return _state(row)

    async def outage_at(self, ctx: BackendContext, address: str) -> Outage | None:
        area = area_of(address)
        if area is None:
            return None
        row = (
            await ctx.session.execute(
                select(DemoOutage)
                .where(DemoOutage.area == area, DemoOutage.closed_at.is_(None))
                .order_by(DemoOutage.started_at.desc())
                .limit(1)
            )
        ).scalar()
        return (
            None if row is None else Outage(area=row.area, description=row.description, eta=row.eta)
        )
