"""The demo billing/CRM: seeded subscribers behave the way the sandbox promises (SQLite + PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from services.backend import BackendContext, BackendError, Customer, to_json
from services.backend.demo import MOSCOW, DemoBackend, area_of
from storage.db import Database
from storage.models import DemoCustomer, DemoOutage, DemoTariff, DemoTicket

backend = DemoBackend()


@asynccontextmanager
async def turn(db: Database) -> AsyncIterator[BackendContext]:
    """One pipeline turn: a transaction the backend works in (the demo ignores who is asking)."""
    async with db.session() as s, s.begin():
        yield BackendContext(s, "telegram", 0, 0)


async def seeded(db: Database) -> Database:
    await backend.prepare(db)
    return db


async def customer(db: Database, phone: str) -> Customer:
    async with turn(db) as ctx:
        found = await backend.find_customer(ctx, phone=phone)
    assert found is not None, phone
    return found


def today() -> date:
    return datetime.now(MOSCOW).date()


async def test_seeding_is_idempotent_even_from_two_processes_at_once(db: Database) -> None:
    await asyncio.gather(backend.prepare(db), backend.prepare(db))
    await backend.prepare(db)
    async with db.session() as s:
        for model, expected in ((DemoTariff, 7), (DemoCustomer, 6), (DemoOutage, 1)):
            assert await s.scalar(select(func.count()).select_from(model)) == expected, model


@pytest.mark.parametrize(
    "spelling",
    ["+79110000001", "89110000001", "8 911 000-00-01", "+7 (911) 000-00-01", "9110000001"],
)
async def test_customer_is_found_by_phone_however_it_is_typed(db: Database, spelling: str) -> None:
    await seeded(db)
    anna = await customer(db, spelling)
    assert (anna.name, anna.phone, anna.account) == ("Анна", "+79110000001", "100200301")
    assert anna.address == "Пушкин, ул. Садовая, д. 12, кв. 5" and anna.area == "садовая"


async def test_customer_is_found_by_account_and_strangers_are_not(db: Database) -> None:
    await seeded(db)
    async with turn(db) as ctx:
        by_account = await backend.find_customer(ctx, account="100 200 302")
        assert by_account is not None and by_account.name == "Игорь"
        assert await backend.find_customer(ctx, phone="+79990000000") is None
        assert await backend.find_customer(ctx, phone="привет") is None
        assert await backend.find_customer(ctx, account="999999999") is None
        assert await backend.find_customer(ctx) is None


async def test_balance_shows_money_fees_and_next_charge(db: Database) -> None:
    await seeded(db)
    anna, maria = await customer(db, "+79110000001"), await customer(db, "+79110000003")
    async with turn(db) as ctx:
        balance = await backend.balance(ctx, anna)
        maria_balance = await backend.balance(ctx, maria)
    assert balance.amount == 350.50
    assert balance.monthly_fee == 950.0  # "Мой онлайн" 450 + "Дом 100" 500
    assert balance.next_charge is not None and balance.next_charge.day == 1
    assert today() < balance.next_charge <= today() + timedelta(days=31)
    assert balance.promised_payment_until is None
    assert maria_balance.promised_payment_until == today() + timedelta(days=2)
    assert to_json(balance)["next_charge"] == balance.next_charge.isoformat()


async def test_tariff_catalogue_lists_mobile_then_home(db: Database) -> None:
    await seeded(db)
    async with turn(db) as ctx:
        tariffs = await backend.tariffs(ctx)
    assert [t.name for t in tariffs] == [
        "Мой онлайн",
        "Мой разговор",
        "Безлимит+",
        "Классический",
        "Дом 100",
        "Дом 500 + ТВ",
        "Дом 1000",
    ]
    assert all(len(t.code) <= 16 and t.code.isascii() and t.summary for t in tariffs)
    assert {t.kind for t in tariffs[:4]} == {"mobile"} and {t.kind for t in tariffs[4:]} == {"home"}


async def test_tariff_change_takes_effect_tomorrow_and_refuses_nonsense(db: Database) -> None:
    await seeded(db)
    anna, igor = await customer(db, "+79110000001"), await customer(db, "+79110000002")
    async with turn(db) as ctx:
        assert (await backend.current_tariff(ctx, anna)).name == "Мой онлайн"
        change = await backend.change_tariff(ctx, anna, "m_unlim")
    assert change.tariff.name == "Безлимит+" and change.effective == today() + timedelta(days=1)
    async with turn(db) as ctx:
        assert (await backend.current_tariff(ctx, anna)).code == "m_unlim"
        assert (await backend.balance(ctx, anna)).monthly_fee == 750.0 + 500.0
        home = await backend.change_tariff(ctx, anna, "h_1000")  # the home slot, mobile kept
        assert home.tariff.kind == "home"
        assert (await backend.current_tariff(ctx, anna)).code == "m_unlim"

    for who, code, reason in (
        (anna, "m_gold", "unknown_tariff"),
        (anna, "m_unlim", "same_tariff"),
        (anna, "h_1000", "same_tariff"),
        (igor, "h_100", "no_home_connection"),
    ):
        with pytest.raises(BackendError) as err:
            async with turn(db) as ctx:
                await backend.change_tariff(ctx, who, code)
        assert err.value.reason == reason, (who.name, code)


async def test_debtor_takes_a_promised_payment_once(db: Database) -> None:
    await seeded(db)
    igor = await customer(db, "+79110000002")  # -120 ₽ on a 350 ₽ tariff
    async with turn(db) as ctx:
        offer = await backend.promised_payment_offer(ctx, igor)
        assert offer.available and offer.reason is None
        assert (offer.amount, offer.days, offer.fee) == (500.0, 3, 10.0)  # 470 rounded up to 50
        taken = await backend.take_promised_payment(ctx, igor)
    assert (taken.amount, taken.until, taken.fee) == (500.0, today() + timedelta(days=3), 10.0)

    async with turn(db) as ctx:
        balance = await backend.balance(ctx, igor)
        assert balance.amount == 380.0 and balance.promised_payment_until == taken.until
        again = await backend.promised_payment_offer(ctx, igor)
    assert not again.available
    assert again.reason == f"Обещанный платёж уже подключён до {taken.until:%d.%m}"
    with pytest.raises(BackendError) as err:
        async with turn(db) as ctx:
            await backend.take_promised_payment(ctx, igor)
    assert err.value.reason == "not_available"


async def test_double_tap_on_promised_payment_credits_once(db: Database) -> None:
    await seeded(db)
    igor = await customer(db, "+79110000002")

    async def take() -> float:
        async with turn(db) as ctx:
            return (await backend.take_promised_payment(ctx, igor)).amount

    results = await asyncio.gather(take(), take(), return_exceptions=True)
    assert sorted(map(type, results), key=lambda t: t.__name__) == [BackendError, float], results
    async with turn(db) as ctx:
        assert (await backend.balance(ctx, igor)).amount == 380.0


async def test_promised_payment_is_refused_with_a_reason(db: Database) -> None:
    await seeded(db)
    maria, dmitry = await customer(db, "+79110000003"), await customer(db, "+79110000005")
    async with turn(db) as ctx:
        for_maria = await backend.promised_payment_offer(ctx, maria)
        for_dmitry = await backend.promised_payment_offer(ctx, dmitry)
    until = today() + timedelta(days=2)
    assert not for_maria.available
    assert for_maria.reason == f"Обещанный платёж уже подключён до {until:%d.%m}"
    assert not for_dmitry.available
    assert for_dmitry.reason == "На счёте хватает денег, обещанный платёж не нужен 🙂"


async def test_small_promised_payment_is_free_and_at_least_100(db: Database) -> None:
    await seeded(db)
    async with turn(db) as ctx:
        ctx.session.add(
            DemoCustomer(
                name="Вера",
                phone="+79110000099",
                account="100200399",
                balance=170.0,
                tariff_code="m_classic",
            )
        )
    vera = await customer(db, "+79110000099")  # 30 ₽ short of 200 ₽
    async with turn(db) as ctx:
        offer = await backend.promised_payment_offer(ctx, vera)
    assert offer.available and (offer.amount, offer.fee) == (100.0, 0.0)


async def test_ticket_numbers_are_unique_and_due_dates_match_the_kind(db: Database) -> None:
    await seeded(db)
    oleg = await customer(db, "+79110000004")

    async def create(kind: str, details: dict[str, object]) -> tuple[str, datetime]:
        async with turn(db) as ctx:
            receipt = await backend.create_ticket(ctx, kind, oleg, details)
        return receipt.number, receipt.due_at

    before = datetime.now(UTC)
    receipts = await asyncio.gather(
        *(create("complaint", {"text": f"жалоба {i}"}) for i in range(5)),
        create("block_number", {}),
        create("roaming", {}),
    )
    numbers = [n for n, _ in receipts]
    assert len(set(numbers)) == len(numbers)
    assert all(n.startswith("C-") for n in numbers[:5])
    assert numbers[5].startswith("B-") and numbers[6].startswith("T-")
    for _, due in receipts[:5]:
        assert due.tzinfo is not None
        assert timedelta(hours=24) <= due - before < timedelta(hours=24, minutes=1)
    assert timedelta(minutes=15) <= receipts[5][1] - before < timedelta(minutes=16)
    assert timedelta(hours=48) <= receipts[6][1] - before < timedelta(hours=48, minutes=1)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(DemoTicket)) == 7


async def test_technician_comes_by_the_end_of_the_chosen_window(db: Database) -> None:
    await seeded(db)
    oleg = await customer(db, "+79110000004")
    window = {"date": "2026-12-03", "from": "10:00", "to": "14:00"}
    async with turn(db) as ctx:
        visit = await backend.create_ticket(ctx, "technician_visit", oleg, {"window": window})
        default = await backend.create_ticket(ctx, "technician_visit", None, {})
    assert visit.number.startswith("TV-") and visit.details == {"window": window}
    assert visit.due_at == datetime(2026, 12, 3, 11, 0, tzinfo=UTC)  # 14:00 in Moscow
    tomorrow_evening = datetime.combine(today() + timedelta(days=1), datetime.min.time(), MOSCOW)
    assert default.due_at == (tomorrow_evening + timedelta(hours=18)).astimezone(UTC)
    with pytest.raises(BackendError) as err:
        async with turn(db) as ctx:
            await backend.create_ticket(
                ctx, "technician_visit", oleg, {"window": {"date": "завтра", "to": "14:00"}}
            )
    assert err.value.reason == "bad_window"


@pytest.mark.parametrize(
    "address", ["Пушкин, Октябрьский бульвар, д. 20, кв. 14", "б-р Октябрьский, д.20"]
)
async def test_outage_is_found_for_its_street_however_it_is_written(
    db: Database, address: str
) -> None:
    await seeded(db)
    async with turn(db) as ctx:
        outage = await backend.outage_at(ctx, address)
    assert outage is not None
    assert outage.area == "октябрьский" and "бригада" in outage.description
    assert outage.eta is not None
    assert timedelta(hours=2) < outage.eta - datetime.now(UTC) <= timedelta(hours=3)


async def test_no_outage_on_other_streets(db: Database) -> None:
    await seeded(db)
    async with turn(db) as ctx:
        assert await backend.outage_at(ctx, "Пушкин, ул. Садовая, д. 12") is None
        assert await backend.outage_at(ctx, "12") is None


async def test_restart_keeps_the_demo_outage_and_promise_current(db: Database) -> None:
    await seeded(db)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    async with db.session() as s, s.begin():
        await s.execute(update(DemoOutage).values(eta=long_ago))
        await s.execute(
            update(DemoCustomer)
            .where(DemoCustomer.phone == "+79110000003")
            .values(promised_until=date(2020, 1, 1))
        )
    await backend.prepare(db)
    oleg = await customer(db, "+79110000004")
    maria = await customer(db, "+79110000003")
    async with turn(db) as ctx:
        assert oleg.address is not None
        outage = await backend.outage_at(ctx, oleg.address)
        assert outage is not None and outage.eta is not None and outage.eta > datetime.now(UTC)
        assert not (await backend.promised_payment_offer(ctx, maria)).available


@pytest.mark.parametrize(
    ("address", "area"),
    [
        ("Пушкин, ул. Садовая, д. 12, кв. 5", "садовая"),
        ("садовая 12", "садовая"),
        ("г. Пушкин, улица Садовая, 12/3, корп 2", "садовая"),
        ("Октябрьский бульвар 20", "октябрьский"),
        ("б-р Октябрьский, д.20", "октябрьский"),
        ("Санкт-Петербург, Пушкин, Ленинградская ул., д. 35, кв. 2", "ленинградская"),
        ("пр-т Ленина 5", "ленина"),
        ("Пушкин, Магазейная ул., 44 А", "магазейная"),
        ("СПб, наб. Чёрной речки, 3", "черной речки"),
        ("д. 12, кв. 5", None),
        ("", None),
    ],
)
def test_area_of_reduces_an_address_to_its_street(address: str, area: str | None) -> None:
    assert area_of(address) == area
