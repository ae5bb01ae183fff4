"""The flow actions answered by the operator's billing/CRM (`call: balance` and the like).

Each entry names the `Backend` method it asks and how its result lands in the conversation;
adding a backend action is one method on `Backend` (and the demo) plus one entry here.
"""

from __future__ import annotations

from typing import Any

from dialogs.actions import Action, ActionContext
from nlu.address import extract_address, extract_street, parse_area
from services import audit
from services.backend import Backend, BackendContext, BackendError, Customer, to_json


def context(call: ActionContext) -> BackendContext:
    return BackendContext(call.session, call.channel, call.subscriber_id, call.conversation_id)


def customer_of(call: ActionContext) -> Customer:
    """The subscriber identified in this conversation (`customer`), or BackendError."""
    data = call.slots.get("customer")
    if not isinstance(data, dict):
        raise BackendError("no customer identified in this conversation", "no_customer")
    return Customer(**data)


def backend_actions(backend: Backend) -> list[Action]:
    async def balance(call: ActionContext) -> Any:
        return to_json(await backend.balance(context(call), customer_of(call)))

    async def tariff_current(call: ActionContext) -> Any:
        """Their tariff, and their home internet/TV service under `home` if they have one."""
        ctx, customer = context(call), customer_of(call)
        current = to_json(await backend.current_tariff(ctx, customer))
        current["home"] = to_json(await backend.home_tariff(ctx, customer))
        return current

    async def tariffs(call: ActionContext) -> Any:
        return to_json(await backend.tariffs(context(call)))

    async def tariff_change(call: ActionContext) -> Any:
        code = call.slots.get("tariff")
        if not code:
            raise BackendError("tariff_change without a chosen `tariff`", "no_tariff")
        done = await backend.change_tariff(context(call), customer_of(call), str(code))
        _audited(call, "tariff_changed", {"tariff": str(code)})
        return to_json(done)

    async def promised_payment_offer(call: ActionContext) -> Any:
        return to_json(await backend.promised_payment_offer(context(call), customer_of(call)))

    async def promised_payment(call: ActionContext) -> Any:
        done = await backend.take_promised_payment(context(call), customer_of(call))
        _audited(call, "promised_payment_taken", {"amount": done.amount})
        return to_json(done)

    async def offices(call: ActionContext) -> Any:
        """The salons, and whether there is one on the street the subscriber asked about."""
        found = await backend.offices(context(call))
        street = extract_address(call.text) or extract_street(call.text) if call.text else None
        asked = parse_area(street) if street else None
        near = [o for o in found if asked is not None and o.area == asked.key]
        return {
            "items": to_json(found),
            "asked": asked.title if asked is not None and asked.key else None,
            "near": to_json(near),
        }

    return [
        Action("balance", balance, level="verified", doc="the customer's balance"),
        Action(
            "tariff_current",
            tariff_current,
            level="verified",
            doc="their tariff (and home service)",
        ),
        Action("tariffs", tariffs, doc="the tariffs on offer"),
        Action(
            "tariff_change",
            tariff_change,
            needs=("tariff",),
            level="fresh",
            doc="switch to `tariff`",
        ),
        Action(
            "promised_payment_offer",
            promised_payment_offer,
            level="verified",
            doc="what can be promised",
        ),
        Action(
            "promised_payment",
            promised_payment,
            level="fresh",
            doc="take the promised payment",
        ),
        Action("offices", offices, doc="the salons; `near`: those on the street asked about"),
    ]


def _audited(call: ActionContext, action: str, details: dict[str, Any]) -> None:
    """An account action the bot did on the subscriber's behalf goes to the audit log."""
    audit.record(
        call.session,
        action,
        actor="bot",
        subscriber_id=call.subscriber_id,
        conversation_id=call.conversation_id,
        details=details,
    )
