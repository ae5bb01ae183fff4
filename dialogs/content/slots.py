"""Compiling slot definitions (`slots:`): what a form asks, its type, its choices (fixed or from a
list result) and where a remembered value may come from (`from:`)."""

from __future__ import annotations

from typing import Any

from dialogs.content import limits
from dialogs.content.model import REMEMBERED_TYPES, ChoicesFrom, SlotDef
from dialogs.content.responses import check_filters, response_ref
from dialogs.content.state import Compilation
from dialogs.slot_types import SLOT_TYPES, Choice
from dialogs.yamlsrc import PathKey, Source

SLOT_KEYS = ("type", "prompt", "retry", "choices", "choices_from", "from")


def compile_slot(st: Compilation, src: Source, name: str, raw: Any) -> SlotDef | None:
    """One entry of `slots:`; None when it is too broken to use (the problem is reported)."""
    path: PathKey = ("slots", name)
    if not isinstance(raw, dict):
        st.err(src, path, "a slot needs `type` and `prompt`")
        return None
    for key in raw:
        if key not in SLOT_KEYS:
            st.err(src, (*path, key), f"unknown slot key {key!r}")
    kind = raw.get("type", "text")
    if kind not in SLOT_TYPES:
        st.err(src, (*path, "type"), f"unknown slot type {kind!r} (known: {', '.join(SLOT_TYPES)})")
    if "prompt" not in raw:
        st.err(src, path, f"slot {name!r} needs a prompt (what the bot asks)")
        return None
    prompt = response_ref(st, src, (*path, "prompt"), raw["prompt"], None)
    retry = response_ref(st, src, (*path, "retry"), raw["retry"], None) if "retry" in raw else None
    choices = _choices(st, src, path, name, raw.get("choices") or [])
    choices_from = (
        _choices_from(st, src, path, raw["choices_from"]) if "choices_from" in raw else None
    )
    if kind == "choice" and not choices and choices_from is None:
        st.err(src, path, f"choice slot {name!r} needs `choices` or `choices_from`")
    prefill = None
    if "from" in raw:
        prefill = st.condition(src, (*path, "from"), raw["from"])
        if kind not in REMEMBERED_TYPES:
            st.err(
                src,
                (*path, "from"),
                f"`from:` fills only remembered slots ({', '.join(sorted(REMEMBERED_TYPES))}); "
                f"a {kind} slot is asked every time",
            )
    return SlotDef(name, kind, prompt, retry, tuple(choices), choices_from, prefill)


def _choices(st: Compilation, src: Source, path: PathKey, name: str, raw: Any) -> list[Choice]:
    """`choices:` the buttons a choice slot offers, each `value`, `title` and maybe `synonyms`."""
    choices: list[Choice] = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or "value" not in c or "title" not in c:
            st.err(src, (*path, "choices", i), "a choice needs `value` and `title`")
            continue
        syn = c.get("synonyms") or []
        choices.append(Choice(str(c["value"]), str(c["title"]), tuple(str(s) for s in syn)))
        limits.check_choice(st, src, (*path, "choices", i), name, str(c["value"]), str(c["title"]))
    return choices


def _choices_from(st: Compilation, src: Source, path: PathKey, raw: Any) -> ChoicesFrom | None:
    """`choices_from:` choices built from a list result (`for`) when the slot is asked."""
    if not isinstance(raw, dict) or set(raw) != {"for", "value", "title"}:
        st.err(src, (*path, "choices_from"), "choices_from needs `for`, `value` and `title`")
        return None
    choices_from = ChoicesFrom(str(raw["for"]), str(raw["value"]), str(raw["title"]))
    check_filters(st, src, (*path, "choices_from", "title"), choices_from.title)
    st.pending.names.append((src, (*path, "choices_from", "for"), choices_from.of, "choices_from"))
    return choices_from
