"""Import aiogram with its Telegram types built on first use instead of all at import.

aiogram declares its ~440 types with pydantic's `defer_build`, then `aiogram/types/__init__.py`
calls `model_rebuild()` on every one of them, which builds each schema at once (and the nested
ones again inside each): ~3.5 of the ~4.5 CPU seconds `import aiogram` takes, most of a webhook
process's start-up. Importing aiogram through `load()` skips those rebuilds and keeps the
namespace aiogram passed to them, so pydantic builds a type, with the same names, the first time
it is validated or created. The Update and Message every message goes through are built at once
(~0.13 s, see `_build_the_hot_types`). Nothing else changes: the same classes validate the same
data.

Import this module before anything imports aiogram (bots/telegram.py and
handoff/telegram_group/ do); if aiogram was imported already, `load()` does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

_namespace: dict[str, Any] = {}


def load() -> None:
    if "aiogram" in sys.modules:
        return
    original = BaseModel.__dict__["model_rebuild"].__func__

    def skip_aiogram(cls: type[BaseModel], *args: Any, **kwargs: Any) -> Any:
        if not cls.__module__.startswith("aiogram."):
            return original(cls, *args, **_one_frame_up(kwargs))
        names: Mapping[str, Any] | None = kwargs.get("_types_namespace")
        if names is not None and not _namespace:
            _namespace.update(names)  # aiogram passes the same mapping for every type
        if kwargs.get("force"):
            return original(cls, *args, **_one_frame_up(kwargs))
        return None

    BaseModel.model_rebuild = classmethod(skip_aiogram)  # type: ignore[method-assign,assignment]
    try:
        import aiogram  # noqa: F401
    finally:
        BaseModel.model_rebuild = classmethod(original)  # type: ignore[method-assign,assignment]

    def with_namespace(cls: type[BaseModel], *args: Any, **kwargs: Any) -> Any:
        """pydantic's rebuild of a model; an aiogram type or method (its first use) gets the
        names aiogram's own rebuild would have had."""
        if cls.__module__.startswith("aiogram.") and kwargs.get("_types_namespace") is None:
            kwargs["_types_namespace"] = _namespace
        return original(cls, *args, **_one_frame_up(kwargs))

    # On BaseModel, not only TelegramObject: aiogram's methods (SendMessage...) are built when
    # their classes are made, before the types they name are, so they too complete on first use.
    BaseModel.model_rebuild = classmethod(with_namespace)  # type: ignore[method-assign,assignment]
    _build_the_hot_types()


def _one_frame_up(kwargs: dict[str, Any]) -> dict[str, Any]:
    """pydantic resolves a rebuild's names in its caller's frame, `_parent_namespace_depth` frames
    up: one more, past this module's wrapper, so every other model rebuilds as it would."""
    return {**kwargs, "_parent_namespace_depth": kwargs.get("_parent_namespace_depth", 2) + 1}


def _build_the_hot_types() -> None:
    """Build, once, what every message goes through. Left to first use, Message would never be
    built on its own: pydantic would copy its schema into Update's and into `Response[Message]`
    (~100 ms each), and again whenever the collector drops the cached `Response[Message]`
    class (aiogram parametrises it on every call). Built here: ~130 ms, once."""
    from aiogram.methods.base import Response
    from aiogram.types import ForumTopic, Message, Update, User

    Message.model_rebuild()
    Update.model_rebuild()
    # The replies aiogram validates (Response[method.__returning__]), held so they stay cached.
    _keep.extend(Response[t] for t in (Message, bool, User, ForumTopic, list[Update]))  # type: ignore[valid-type]


_keep: list[type[BaseModel]] = []

load()
