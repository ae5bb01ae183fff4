"""Compiling what the bot says: responses and their variants, per-channel overrides, buttons,
`lines:` lists and images, and checking texts and their `{templates|filters}`.

Names a response uses (templates, buttons' intents, flows and steps) are only recorded here, in
`Compilation.pending`: they are checked once every file is read.
"""

from __future__ import annotations

from typing import Any

from dialogs import expr
from dialogs.content import limits
from dialogs.content.model import (
    CHANNELS,
    FLOW_PAYLOAD,
    INTENT_PAYLOAD,
    KB_PAYLOAD,
    STEP_PAYLOAD,
    ButtonSpec,
    Lines,
    Response,
    Variant,
)
from dialogs.content.state import Compilation
from dialogs.yamlsrc import PathKey, Source

Rows = tuple[tuple[ButtonSpec, ...], ...]
BUTTON_TARGETS = ("intent", "flow", "goto", "article", "url", "request")
REQUESTS = ("contact",)  # `request: contact`: Telegram's «Поделиться номером» (VK leaves it out)


def response_ref(
    st: Compilation, src: Source, path: PathKey, raw: Any, flow: str | None
) -> Response:
    """A `say:`/`prompt:` value: a response name or an inline response."""
    if isinstance(raw, str) and raw.replace("_", "").isalnum() and " " not in raw:
        st.pending.response_refs.append((src, path, raw))
        st.used_responses.add(raw)
        return Response(raw, ())  # resolved after all files are read
    return response(st, src, path, raw, f"{flow or 'inline'}@{src.at(path)[0]}", flow)


def response(
    st: Compilation, src: Source, path: PathKey, raw: Any, name: str, flow: str | None
) -> Response:
    """A response: one variant or a list of them (the bot picks one)."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        st.err(src, path, "a response needs at least one variant")
    variants = tuple(
        _variant(st, src, (*path, i) if isinstance(raw, list) else path, item, flow, top=True)
        for i, item in enumerate(items)
    )
    return Response(name, variants)


def _variant(
    st: Compilation, src: Source, path: PathKey, raw: Any, flow: str | None, top: bool
) -> Variant:
    if isinstance(raw, str):
        check_text(st, src, path, raw)
        return Variant(text=raw)
    if not isinstance(raw, dict):
        st.err(
            src,
            path,
            "a response is a text, a list of variants, or a mapping with text/buttons/image/sticker",
        )
        return Variant()
    allowed = {"text", "buttons", "image", "sticker", "lines", *(CHANNELS if top else ())}
    for key in raw:
        if key not in allowed:
            st.err(
                src,
                (*path, key),
                f"unknown key {key!r} in a response (allowed: {', '.join(sorted(allowed))})",
            )
    text = raw.get("text")
    if text is not None and not isinstance(text, str):
        st.err(src, (*path, "text"), "text must be a string")
        text = None
    if isinstance(text, str):
        check_text(st, src, (*path, "text"), text)
    buttons = _buttons(st, src, (*path, "buttons"), raw.get("buttons"), flow)
    image = raw.get("image")
    if image is not None:
        image = _image(st, src, (*path, "image"), image)
    sticker = raw.get("sticker")
    if sticker is not None:
        sticker = str(sticker)
    lines = None
    if "lines" in raw:
        lines = _lines(st, src, (*path, "lines"), raw["lines"])
    variant = Variant(text, buttons, image, sticker, lines)
    overrides = _overrides(st, src, path, raw, flow, variant)
    variant = Variant(text, buttons, image, sticker, lines, overrides)
    if top:
        _check_variant(st, src, path, raw, variant)
    return variant


def _overrides(
    st: Compilation,
    src: Source,
    path: PathKey,
    raw: dict[Any, Any],
    flow: str | None,
    base: Variant,
) -> tuple[tuple[str, Variant], ...]:
    """`telegram:` / `vk:` inside a variant: what differs in that channel, the rest inherited."""
    overrides = []
    for channel in CHANNELS:
        if channel in raw:
            own = raw[channel] if isinstance(raw[channel], dict) else {}
            sub = _variant(st, src, (*path, channel), raw[channel], flow, top=False)
            overrides.append(
                (
                    channel,
                    Variant(
                        sub.text if sub.text is not None else base.text,
                        sub.buttons if "buttons" in own else base.buttons,
                        sub.image if sub.image is not None else base.image,
                        sub.sticker if sub.sticker is not None else base.sticker,
                        sub.lines if sub.lines is not None else base.lines,
                    ),
                )
            )
    return tuple(overrides)


def _check_variant(
    st: Compilation, src: Source, path: PathKey, raw: dict[Any, Any], variant: Variant
) -> None:
    """What each channel really gets: something to send, and buttons within its limits."""
    for channel in CHANNELS:
        seen = variant.for_channel(channel)
        if seen.text is None and seen.image is None and seen.sticker is None:
            message = "a response needs text, image or sticker"
            if variant.channels:
                message += f" (in {channel} nothing would be sent)"
            st.err(src, path, message)
            break
    for channel in CHANNELS:
        own = raw.get(channel) if isinstance(raw.get(channel), dict) else None
        if own is not None and "buttons" in own:
            rows, at = variant.for_channel(channel).buttons, (*path, channel)
        else:
            rows, at = variant.buttons, path
        limits.check_buttons(st, src, at, rows, channel)


def check_text(st: Compilation, src: Source, path: PathKey, text: str) -> None:
    """A text the bot sends: not empty, within the limits, known template names and filters."""
    if not text.strip():
        st.err(src, path, "text is empty")
    limits.check_text(st, src, path, text)
    for name, flt, offset in expr.template_spans(text):
        line, col = src.position_in_text(path, text, offset)
        what = f"template {{{name}}}"
        st.pending.exact_names.append((src, line, col, name, what))
        if flt and flt not in expr.FILTERS:
            st.err_at(src, line, col, f"unknown filter |{flt} (known: {', '.join(expr.FILTERS)})")


def check_filters(st: Compilation, src: Source, path: PathKey, text: str) -> None:
    """Templates over list items (`lines`, `choices_from`): names are item fields, only the
    filters can be checked."""
    for _name, flt, offset in expr.template_spans(text):
        if flt and flt not in expr.FILTERS:
            line, col = src.position_in_text(path, text, offset)
            st.err_at(src, line, col, f"unknown filter |{flt} (known: {', '.join(expr.FILTERS)})")


def _image(st: Compilation, src: Source, path: PathKey, value: Any) -> str | None:
    if not isinstance(value, str):
        st.err(src, path, "image must be a file path under content/ or an http(s) URL")
        return None
    if value.startswith(("http://", "https://")):
        return value
    file = (st.content_dir / value).resolve()
    if not file.is_file():
        st.err(src, path, f"image file {value!r} not found under {st.content_dir}")
    return str(file)


def _lines(st: Compilation, src: Source, path: PathKey, raw: Any) -> Lines | None:
    if not isinstance(raw, dict) or set(raw) != {"for", "text"}:
        st.err(src, path, "lines needs exactly `for: <list result>` and `text: <template>`")
        return None
    st.pending.names.append((src, (*path, "for"), str(raw["for"]), "lines for"))
    check_filters(st, src, (*path, "text"), str(raw["text"]))
    return Lines(str(raw["for"]), str(raw["text"]))


def _buttons(st: Compilation, src: Source, path: PathKey, raw: Any, flow: str | None) -> Rows:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        st.err(src, path, "buttons must be a list of rows (or of buttons, one per row)")
        return ()
    rows = []
    for r, row in enumerate(raw):
        items = row if isinstance(row, list) else [row]
        rpath = (*path, r)
        specs = []
        for i, b in enumerate(items):
            bpath = (*rpath, i) if isinstance(row, list) else rpath
            spec = _button(st, src, bpath, b, flow)
            if spec is not None:
                specs.append(spec)
        rows.append(tuple(specs))
    return tuple(rows)


def _button(
    st: Compilation, src: Source, path: PathKey, raw: Any, flow: str | None
) -> ButtonSpec | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("title"), str):
        st.err(
            src,
            path,
            "a button needs a `title` and one of intent / flow / goto / article / url / request",
        )
        return None
    targets = [k for k in BUTTON_TARGETS if k in raw]
    extra = set(raw) - {"title", *BUTTON_TARGETS}
    if extra:
        st.err(src, (*path, sorted(extra)[0]), f"unknown button key {sorted(extra)[0]!r}")
    if len(targets) != 1:
        st.err(
            src,
            path,
            f"button {raw['title']!r} needs exactly one of "
            "intent / flow / goto / article / url / request",
        )
        return None
    kind, value = targets[0], str(raw[targets[0]])
    title = raw["title"]
    tpath = (*path, kind)
    if kind == "url":
        if not value.startswith(("https://", "http://", "tg://")):
            st.err(src, tpath, f"url {value!r} must start with https://, http:// or tg://")
        return ButtonSpec(title, url=value)
    if kind == "request":
        if value not in REQUESTS:
            st.err(src, tpath, f"request {value!r}: the only request is `contact`")
            return None
        return ButtonSpec(title, request=value)
    payload = _payload(st, src, tpath, kind, value, flow)
    return None if payload is None else ButtonSpec(title, payload=payload)


def _payload(
    st: Compilation, src: Source, tpath: PathKey, kind: str, value: str, flow: str | None
) -> str | None:
    """What pressing a button sends: an intent, a flow, a step of a flow (`goto`), or a
    knowledge-base article (its short answer, as if the subscriber had asked its question)."""
    if kind == "article":
        st.pending.articles.append((src, tpath, value))
        return KB_PAYLOAD + value
    if kind == "intent":
        st.pending.intents.append((src, tpath, value))
        return INTENT_PAYLOAD + value
    if kind == "flow":
        st.pending.flows.append((src, tpath, value))
        st.flow_refs.add(value)
        return FLOW_PAYLOAD + value
    target_flow, _, label = value.rpartition(".")
    target_flow = target_flow or (flow or "")
    if not target_flow:
        st.err(
            src,
            tpath,
            f"goto {value!r} in a shared response must name the flow: <flow>.<step id>",
        )
        return None
    st.pending.steps.append((src, tpath, target_flow, label))
    st.entry_labels.setdefault(target_flow, set()).add(label)
    return f"{STEP_PAYLOAD}{target_flow}:{label}"
