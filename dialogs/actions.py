"""Flow actions: what `call: <name>` (and the `ticket:` step) in content runs.

An `Action` is a name, the slots content must declare for it (`needs`), the slot its result
goes to when the step has no `as:` (`into`; `fixed` when the step may not rename it), the
verification it needs (`level`: "none", "verified" for personal data, "fresh" for a change with
consequences; per ticket kind for the `ticket:` step) and an async callable. The composition root fills an `Actions` registry from the business services
(services/actions.py) and hands it to the dialog engine, which runs them, and to content
validation, which refuses unknown actions and missing slots. Adding an action is one entry in
the module of the service that implements it.

An action raises `ActionError` (or a subclass: the backend's, linking's, incidents') when it
can't do it; the flow then follows its `on_error:` step with `error.reason` in the scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.messages import Outbound
from storage.models import ChannelAccount

# Renders the content response `name` for a channel: (name, scope, channel) -> the reply.
Render = Callable[[str, dict[str, Any], str], Outbound]


class ActionError(Exception):
    """The action could not be done. `reason` is a short machine code a flow can branch on
    (`error.reason`: "unavailable", "debt_too_high", "wrong_code", ...); str() is for the log."""

    def __init__(self, message: str, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action gets: the turn's transaction and who is asking, the conversation's slots
    so far (read them; the result is what the action returns), the step's own arguments, the
    topic of the contact (the intent it is about) and the clock."""

    session: AsyncSession  # the pipeline's transaction: never commit or roll back
    channel: str
    account: ChannelAccount
    conversation_id: int
    slots: Mapping[str, Any]
    render: Render
    now: datetime
    topic: str = "unknown"
    args: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""  # what the subscriber wrote this turn (for actions that read it)

    @property
    def subscriber_id(self) -> int:
        return self.account.subscriber_id


Run = Callable[[ActionContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    run: Run
    needs: tuple[str, ...] = ()  # slots content must declare (the action reads them)
    into: str | None = None  # the result's slot when the step has no `as:` (default: the name)
    fixed: bool = False  # `into` can't be renamed with `as:` (others read it there)
    step: str | None = None  # run only by this step kind (e.g. "ticket"), never by `call:`
    doc: str = ""
    level: str = "none"  # the verification it needs: none | verified | fresh
    kind_levels: Mapping[str, str] = field(default_factory=dict)  # `ticket:` kind -> level

    def level_for(self, args: Mapping[str, Any]) -> str:
        """The verification this call needs (a ticket's depends on its kind)."""
        return self.kind_levels.get(str(args.get("kind")), self.level)

    @property
    def result_slot(self) -> str:
        return self.into or self.name


class Actions(Mapping[str, Action]):
    """The registry: name -> Action. Two actions with one name are refused."""

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        self._by_name: dict[str, Action] = {}
        for action in actions:
            if action.name in self._by_name:
                raise ValueError(f"two flow actions are named {action.name!r}")
            self._by_name[action.name] = action

    def __getitem__(self, name: str) -> Action:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def callable_names(self) -> list[str]:
        """What `call:` may name (actions that belong to a step kind of their own excluded)."""
        return [name for name, action in self._by_name.items() if action.step is None]
