"""The backend calls a flow can make (`call: <action>`): the slots each one needs and where its
result goes, and the two checks content validation makes with them.

The compiler gets an `ActionTable` (by default `DEFAULT_ACTIONS`, built from the tables below) and
uses it only through `ActionTable.check_call` (one `call:` step) and
`ActionTable.missing_slots` (once every flow is compiled); anything offering these two methods
and the two mappings can replace it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass

# Backend calls a flow can make (`call:`): the slots each one needs, and what it stores.
ACTIONS: dict[str, tuple[str, ...]] = {
    "identify": ("contract",),
    "balance": (),
    "tariff_current": (),
    "tariffs": (),
    "tariff_change": ("tariff",),
    "promised_payment_offer": (),
    "promised_payment": (),
    "outage": ("address",),
    "incident_mute": (),  # dialogs/incidents.py: no closing notice for this outage
    "notifications_off": (),  # no proactive messages at all (Subscriber.notifications_off_at)
    "notifications_on": (),
    "link_send": (),  # dialogs.identity: a one-time code to the subscriber's other channel
    "link_confirm": ("link_code",),
    "unlink": (),
}
ACTION_RESULT = {"identify": "customer"}  # where a result goes when the step has no `as:`


@dataclass(frozen=True, slots=True)
class ActionTable:
    """What validation knows of the backend's actions."""

    needs: Mapping[str, tuple[str, ...]]  # action -> the slots it needs (order: as reported)
    results: Mapping[str, str]  # action -> the fixed name its result is stored under

    def check_call(self, action: str, named: str | None) -> tuple[str, list[tuple[str, str]]]:
        """A `call: <action>` step, with its `as: <named>` if any: the name its result is stored
        under, and its problems as (the step key they belong to, message)."""
        problems = []
        if action not in self.needs:
            problems.append(("call", f"unknown action {action!r} (known: {', '.join(self.needs)})"))
        if action in self.results and named is not None:
            problems.append(
                ("as", f"`{action}` always stores its result in `{self.results[action]}`")
            )
        into = named if named is not None else self.results.get(action, action)
        return into, problems

    def missing_slots(self, called: Iterable[str], slots: Container[str]) -> Iterator[str]:
        """A message for each slot an action the flows call needs but no file declares."""
        used = set(called)
        for action, needs in self.needs.items():
            for slot in needs:
                if action in used and slot not in slots:
                    yield f"action {action!r} needs a slot named {slot!r}"


DEFAULT_ACTIONS = ActionTable(ACTIONS, ACTION_RESULT)
