"""What content validation knows of the flow actions (`call: <action>`): the registry the app
runs (dialogs/actions.py), seen as the slots each action needs and where its result goes.

The compiler uses an `ActionTable` only through `check_call` (one `call:` step) and
`missing_slots` (once every flow is compiled).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass

from dialogs.actions import Actions


@dataclass(frozen=True, slots=True)
class ActionTable:
    """What validation knows of the actions."""

    needs: Mapping[str, tuple[str, ...]]  # action -> the slots it needs (order: as reported)
    results: Mapping[str, str]  # action -> the fixed name its result is stored under
    defaults: Mapping[str, str]  # action -> where its result goes without `as:`
    steps: Mapping[str, str]  # action -> the step kind that runs it (not `call:`)
    levels: Mapping[str, str]  # action -> the verification it needs
    ticket_levels: Mapping[str, str]  # ticket kind -> the verification its `ticket:` needs

    @classmethod
    def of(cls, actions: Actions) -> ActionTable:
        ticket = actions.get("ticket")
        return cls(
            needs={name: a.needs for name, a in actions.items() if a.step is None},
            results={name: a.result_slot for name, a in actions.items() if a.fixed},
            defaults={name: a.result_slot for name, a in actions.items()},
            steps={name: a.step for name, a in actions.items() if a.step is not None},
            levels={name: a.level for name, a in actions.items()},
            ticket_levels=dict(ticket.kind_levels) if ticket is not None else {},
        )

    def check_call(self, action: str, named: str | None) -> tuple[str, list[tuple[str, str]]]:
        """A `call: <action>` step, with its `as: <named>` if any: the name its result is stored
        under, and its problems as (the step key they belong to, message)."""
        problems = []
        if action in self.steps:
            kind = self.steps[action]
            problems.append(("call", f"`{action}` is run by a `{kind}:` step, not by `call:`"))
        elif action not in self.needs:
            problems.append(("call", f"unknown action {action!r} (known: {', '.join(self.needs)})"))
        if action in self.results and named is not None:
            problems.append(
                ("as", f"`{action}` always stores its result in `{self.results[action]}`")
            )
        into = named if named is not None else self.defaults.get(action, action)
        return into, problems

    def missing_slots(self, called: Iterable[str], slots: Container[str]) -> Iterator[str]:
        """A message for each slot an action the flows call needs but no file declares."""
        used = set(called)
        for action, needs in self.needs.items():
            for slot in needs:
                if action in used and slot not in slots:
                    yield f"action {action!r} needs a slot named {slot!r}"
