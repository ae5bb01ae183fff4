"""The backend integration point: what the dialogs ask of the operator's billing, CRM and network.

Like Rasa's custom actions, flows call these methods by name (`call: balance`; the table is in
services/backend/actions.py) and use the result in their replies. An integrator implements
`Backend` against their own systems and names the class in settings
(`SUPPORTBOT_BACKEND=package.module:ClassName`); `services.backend.demo.DemoBackend` is the
shipped demo with seeded subscribers, used by the sandbox and the tests.

Every method gets a `BackendContext` (who is asking, and the pipeline's database session for
backends that keep their data in the bot's own database, like the demo). Results are plain frozen
dataclasses: the dialog engine stores them in the conversation as JSON via `to_json`.
A backend raises `BackendError` when it cannot answer (billing down, refused operation); the flow
then says its `on_error` reply instead of crashing the turn.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.actions import ActionError


class BackendError(ActionError):
    """The backend could not do it. `reason` is a short machine code (e.g. "debt_too_high",
    "unavailable") a flow can branch on; str() is for the log."""


@dataclass(frozen=True, slots=True)
class BackendContext:
    session: AsyncSession  # the pipeline's transaction; commit/rollback is not yours
    channel: str
    subscriber_id: int
    conversation_id: int


def to_json(value: Any) -> Any:
    """A result as JSON-able data: dates as ISO strings, dataclasses as dicts, lists kept."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class Customer:
    """A subscriber as billing knows them."""

    id: str
    name: str  # first name for a friendly greeting ("Анна")
    phone: str  # normalised, e.g. +79161234567
    account: str  # лицевой счёт
    address: str | None = None  # home connection address, if any
    area: str | None = None  # outage area key for that address (street, district)


@dataclass(frozen=True, slots=True)
class Balance:
    amount: float  # roubles; negative = debt
    monthly_fee: float  # the tariff's next charge
    next_charge: date | None = None
    promised_payment_until: date | None = None


@dataclass(frozen=True, slots=True)
class Tariff:
    code: str  # short id, fits in a button payload
    name: str
    price: float  # roubles per month
    summary: str  # one line: "30 ГБ, 600 мин, безлимит на мессенджеры"
    kind: str = "mobile"  # "mobile" | "home"


@dataclass(frozen=True, slots=True)
class TariffChange:
    tariff: Tariff
    effective: date
    fee: float = 0.0


@dataclass(frozen=True, slots=True)
class PromisedPaymentOffer:
    available: bool
    amount: float
    days: int
    fee: float
    reason: str | None = None  # why not available, in subscriber-facing Russian


@dataclass(frozen=True, slots=True)
class PromisedPayment:
    amount: float
    until: date
    fee: float


@dataclass(frozen=True, slots=True)
class TicketReceipt:
    number: str  # what the subscriber quotes ("T-000123")
    kind: str  # "technician_visit" | "complaint" | "block_number" | ...
    due_at: datetime  # when it will be done / answered at the latest
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TicketState:
    """A ticket as the CRM sees it now: what the subscriber asks about ("где мой мастер?")."""

    number: str
    kind: str
    status: str  # "open" | "cancelled" | "done"
    due_at: datetime  # the promised time (a visit: the end of its window)
    details: dict[str, Any] = field(default_factory=dict)  # window, address, comments, ...
    note: str | None = None  # what is happening, in subscriber-facing Russian, if anything


@dataclass(frozen=True, slots=True)
class Office:
    """A salon/office subscribers can visit."""

    address: str
    hours: str  # "ежедневно 9:00–21:00"
    area: str | None = None  # outage-area key of its street (nlu/address.py): "садовая"
    note: str | None = None  # "есть терминал для оплаты наличными"


@dataclass(frozen=True, slots=True)
class Outage:
    area: str
    description: str
    eta: datetime | None = None  # expected fix time


class Backend(Protocol):
    async def find_customer(
        self, ctx: BackendContext, *, phone: str | None = None, account: str | None = None
    ) -> Customer | None: ...

    async def balance(self, ctx: BackendContext, customer: Customer) -> Balance: ...

    async def current_tariff(self, ctx: BackendContext, customer: Customer) -> Tariff: ...

    async def home_tariff(self, ctx: BackendContext, customer: Customer) -> Tariff | None:
        """The customer's home internet/TV service, if they have one."""
        ...

    async def tariffs(self, ctx: BackendContext) -> list[Tariff]: ...

    async def change_tariff(
        self, ctx: BackendContext, customer: Customer, code: str
    ) -> TariffChange: ...

    async def promised_payment_offer(
        self, ctx: BackendContext, customer: Customer
    ) -> PromisedPaymentOffer: ...

    async def take_promised_payment(
        self, ctx: BackendContext, customer: Customer
    ) -> PromisedPayment: ...

    async def create_ticket(
        self, ctx: BackendContext, kind: str, customer: Customer | None, details: dict[str, Any]
    ) -> TicketReceipt: ...

    async def outage_at(self, ctx: BackendContext, address: str) -> Outage | None: ...

    async def offices(self, ctx: BackendContext) -> list[Office]: ...

    # Verified identity (services/verification.py decides; these deliver and check).
    async def send_code(self, ctx: BackendContext, phone: str, code: str) -> None:
        """Send the one-time `code` by SMS to `phone` (the customer's own number)."""
        ...

    async def check_secret(self, ctx: BackendContext, customer: Customer, answer: str) -> bool:
        """Does `answer` match a secret the operator holds for the customer (code word)?"""
        ...

    # Requests already made: the subscriber asks where they stand, moves or cancels them.
    async def ticket_state(self, ctx: BackendContext, number: str) -> TicketState: ...

    async def reschedule_visit(
        self, ctx: BackendContext, number: str, window: dict[str, Any]
    ) -> TicketState: ...

    async def cancel_ticket(
        self, ctx: BackendContext, number: str, reason: str | None = None
    ) -> TicketState: ...

    async def comment_ticket(self, ctx: BackendContext, number: str, text: str) -> TicketState: ...


def load_backend(spec: str) -> Backend:
    """`package.module:ClassName` -> an instance; raises ValueError naming the setting."""
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr or "Backend")
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"SUPPORTBOT_BACKEND={spec!r}: cannot load it: {exc}") from exc
    backend: Backend = cls()
    return backend
