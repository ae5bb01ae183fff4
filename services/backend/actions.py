"""The flow actions answered by the operator's billing/CRM (`call: balance` and the like).

Each entry names the `Backend` method it asks and how its result lands in the conversation;
adding a backend action is one method on `Backend` (and the demo) plus one entry here.
"""

from __future__ import annotations

from typing import Any

from dialogs.actions import Action, ActionContext
from services.backend import Backend, BackendContext, BackendError, Customer, to_json
from storage.models import Subscriber


def context(call: ActionContext) -> BackendContext:
    return BackendContext(call.session, call.channel, call.subscriber_id, call.conversation_id)


def customer_of(call: ActionContext) -> Customer:
    """The subscriber identified in this conversation (`customer`), or BackendError."""
    data = call.slots.get("customer")
    if not isinstance(data, dict):
        raise BackendError("no customer identified in this conversation", "no_customer")
    return Customer(**data)


def backend_actions(backend: Backend) -> list[Action]:
    async def identify(call: ActionContext) -> Any:
        contract = call.slots.get("contract") or {}
        customer = await backend.find_customer(
            context(call), phone=contract.get("phone"), account=contract.get("account")
        )
        if customer is not None:  # remembered: a later conversation doesn't ask again
            sub = await call.session.get(Subscriber, call.subscriber_id)
            if sub is not None:
                sub.phone, sub.account_number = customer.phone, customer.account
                sub.data = {**sub.data, "customer": to_json(customer)}
        return to_json(customer)

    async def balance(call: ActionContext) -> Any:
        return to_json(await backend.balance(context(call), customer_of(call)))

    async def tariff_current(call: ActionContext) -> Any:
        return to_json(await backend.current_tariff(context(call), customer_of(call)))

    async def tariffs(call: ActionContext) -> Any:
        return to_json(await backend.tariffs(context(call)))

    async def tariff_change(call: ActionContext) -> Any:
        code = call.slots.get("tariff")
        if not code:
            raise BackendError("tariff_change without a chosen `tariff`", "no_tariff")
        return to_json(await backend.change_tariff(context(call), customer_of(call), str(code)))

    async def promised_payment_offer(call: ActionContext) -> Any:
        return to_json(await backend.promised_payment_offer(context(call), customer_of(call)))

    async def promised_payment(call: ActionContext) -> Any:
        return to_json(await backend.take_promised_payment(context(call), customer_of(call)))

    return [
        Action(
            "identify",
            identify,
            needs=("contract",),
            into="customer",
            fixed=True,
            doc="find the subscriber by the phone or account number in `contract`",
        ),
        Action("balance", balance, doc="the identified subscriber's balance"),
        Action("tariff_current", tariff_current, doc="their tariff"),
        Action("tariffs", tariffs, doc="the tariffs on offer"),
        Action("tariff_change", tariff_change, needs=("tariff",), doc="switch to `tariff`"),
        Action("promised_payment_offer", promised_payment_offer, doc="what can be promised"),
        Action("promised_payment", promised_payment, doc="take the promised payment"),
    ]
