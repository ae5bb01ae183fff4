"""What the content studio (studio_page.py) does with YAML text: lists the responses, flows and
intents of a draft, turns a response into form fields and back into its block of the file (the
rest of the file kept byte for byte), finds which form field a `file:line:col` problem is at,
and says the validator's problems in plain Russian."""

from __future__ import annotations

import re
from typing import Any

import yaml

from dialogs.content.responses import BUTTON_TARGETS
from dialogs.yamlsrc import ContentError, Problem, Source, parse

Tree = dict[str, bytes]
CHANNELS = ("telegram", "vk")
TARGETS = BUTTON_TARGETS  # what a button may do (dialogs/content/responses.py)
VARIANT_KEYS = {"text", "buttons", "image", *CHANNELS}


class FormError(ValueError):
    """A response the form cannot show or write (edit it as YAML instead)."""


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def catalogue(tree: Tree) -> dict[str, list[dict[str, Any]]]:
    """The draft's responses, flows (with their titles and intents) and NLU intents (with their
    number of examples), each with the file it is in. Files that do not parse are skipped."""
    responses: list[dict[str, Any]] = []
    flows: list[dict[str, Any]] = []
    intents: list[dict[str, Any]] = []
    for path in sorted(tree):
        if not path.endswith((".yml", ".yaml")):
            continue
        try:
            data = yaml.safe_load(_text(tree[path]))
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict):
            continue
        if path.startswith("dialogs/"):
            for name in data.get("responses") or {}:
                responses.append({"name": str(name), "file": path})
            for name, flow in (data.get("flows") or {}).items():
                flow = flow if isinstance(flow, dict) else {}
                intent = flow.get("intent") or flow.get("intents") or []
                flows.append(
                    {
                        "name": str(name),
                        "title": str(flow.get("title") or name),
                        "intents": [intent] if isinstance(intent, str) else list(intent),
                        "file": path,
                    }
                )
        elif path.startswith("nlu/"):
            for item in data.get("nlu") or []:
                if isinstance(item, dict) and "intent" in item:
                    examples = str(item.get("examples") or "")
                    count = sum(1 for ln in examples.splitlines() if ln.strip().startswith("- "))
                    intents.append({"name": str(item["intent"]), "file": path, "examples": count})
    return {"responses": responses, "flows": flows, "intents": intents}


# -- a response as form fields ---------------------------------------------------------------


def _source(text: str, file: str) -> Source:
    try:
        return parse(text, file)
    except ContentError as exc:
        raise FormError("файл сейчас не разбирается как YAML: исправьте его в режиме YAML") from exc


def response_fields(text: str, file: str, name: str) -> dict[str, Any]:
    """The response `name` of a dialogs file as {variants: [{text, image, buttons, telegram,
    vk}]}; FormError when it uses what the form does not edit (anchors, lines, stickers)."""
    src = _source(text, file)
    raw = ((src.data or {}).get("responses") or {}).get(name)
    if raw is None:
        raise FormError(f"в файле {file} нет ответа «{name}»")
    block = _block(text, src, name)
    if re.search(r"(^|[\s\[{,])[&*][A-Za-z_]", block[2]):
        raise FormError("в ответе есть якорь YAML (& или *): правьте его в режиме YAML")
    items = raw if isinstance(raw, list) else [raw]
    variants = []
    for item in items:
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or set(item) - VARIANT_KEYS:
            extra = ", ".join(sorted(set(item) - VARIANT_KEYS)) if isinstance(item, dict) else ""
            raise FormError(f"в ответе есть то, чего нет в форме ({extra}): правьте его в YAML")
        variant: dict[str, Any] = {
            "text": str(item.get("text") or ""),
            "image": str(item.get("image") or ""),
            "buttons": _buttons_in(item.get("buttons")),
        }
        for channel in CHANNELS:
            override = item.get(channel)
            if override is not None and (
                not isinstance(override, dict) or set(override) - {"text"}
            ):
                raise FormError(f"особенности канала {channel} правьте в режиме YAML")
            variant[channel] = str((override or {}).get("text") or "")
        variants.append(variant)
    return {"variants": variants}


def _buttons_in(raw: Any) -> list[list[dict[str, str]]]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise FormError("кнопки записаны не списком: правьте их в режиме YAML")
    rows = [row if isinstance(row, list) else [row] for row in raw]
    out = []
    for row in rows:
        buttons = []
        for b in row:
            if not isinstance(b, dict) or set(b) - {"title", *TARGETS}:
                raise FormError("у кнопки есть поля, которых нет в форме: правьте её в YAML")
            kind = next((k for k in TARGETS if k in b), "intent")
            buttons.append(
                {"title": str(b.get("title", "")), "kind": kind, "target": str(b.get(kind, ""))}
            )
        out.append(buttons)
    return out


def response_value(fields: dict[str, Any]) -> Any:
    """Form fields back into what the YAML holds (the shortest form that says it)."""
    variants = fields.get("variants")
    if not isinstance(variants, list) or not variants:
        raise FormError("у ответа должен быть хотя бы один вариант")
    out: list[Any] = []
    for v in variants:
        if not isinstance(v, dict):
            raise FormError("вариант ответа должен быть объектом")
        item: dict[str, Any] = {}
        text = str(v.get("text") or "").replace("\r\n", "\n")
        if text:
            item["text"] = text
        if v.get("image"):
            item["image"] = str(v["image"]).strip()
        rows = []
        for row in v.get("buttons") or []:
            buttons = []
            for b in row or []:
                kind = b.get("kind") if b.get("kind") in TARGETS else "intent"
                buttons.append(
                    {"title": str(b.get("title") or ""), kind: str(b.get("target") or "")}
                )
            if buttons:
                rows.append(buttons)
        if rows:
            item["buttons"] = rows
        for channel in CHANNELS:
            override = str(v.get(channel) or "").replace("\r\n", "\n")
            if override:
                item[channel] = {"text": override}
        out.append(item["text"] if set(item) == {"text"} and len(variants) > 1 else item)
    if len(out) == 1:
        only = out[0]
        return only["text"] if isinstance(only, dict) and set(only) == {"text"} else only
    return out


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _dict(dumper: yaml.SafeDumper, value: dict[str, Any]) -> yaml.Node:
    # A button on one line, as the reference content writes them: {title: ..., intent: ...}
    button = "title" in value and all(not isinstance(v, (dict, list)) for v in value.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=button)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(dict, _dict)


def _dump(name: str, value: Any, indent: int) -> str:
    text = yaml.dump(
        {name: value},
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        width=100,
        default_flow_style=False,
    )
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def _block(text: str, src: Source, name: str) -> tuple[int, int, str]:
    return _block_of(text, src, ("responses", name))


def _block_of(text: str, src: Source, key: tuple[str, str]) -> tuple[int, int, str]:
    """Lines [start, end) of the file that hold the entry at `key` (trailing blank lines and
    comments stay outside), and their text."""
    lines = text.splitlines(keepends=True)
    start = src.marks[key][0] - 1
    indent = src.marks[key][1] - 1
    end = start + 1
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if (
            stripped
            and not stripped.startswith("#")
            and len(line) - len(line.lstrip(" ")) <= indent
        ):
            break
        end += 1
    while end > start + 1 and (
        not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")
    ):
        end -= 1
    return start, end, "".join(lines[start:end])


def replace_response(text: str, file: str, name: str, fields: dict[str, Any]) -> str:
    """The file with response `name` rewritten from `fields`; every other line unchanged."""
    src = _source(text, file)
    if ("responses", name) not in src.marks:
        raise FormError(f"в файле {file} нет ответа «{name}»")
    start, end, _old = _block(text, src, name)
    indent = src.marks[("responses", name)][1] - 1
    lines = text.splitlines(keepends=True)
    new = _dump(name, response_value(fields), indent)
    return "".join(lines[:start]) + new + "".join(lines[end:])


def field_of(text: str, file: str, name: str, problem: Problem) -> str | None:
    """Which form field of response `name` a problem is at: `v0.text`, `v1.buttons`,
    `v0.telegram`, ... (None when it is elsewhere in the file)."""
    try:
        src = parse(text, file)
    except ContentError:
        return None
    where = (problem.line, problem.col)
    best: tuple[tuple[int, int], int, tuple[Any, ...]] | None = None
    for path, mark in src.marks.items():
        if path[:2] != ("responses", name) or mark > where:
            continue
        key = (mark, len(path), path)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None
    rest = list(best[2][2:])
    variant = rest.pop(0) if rest and isinstance(rest[0], int) else 0
    part = rest[0] if rest else "text"
    if part not in ("text", "image", "buttons", *CHANNELS):
        part = "text"
    return f"v{variant}.{part}"


# -- problems in plain Russian --------------------------------------------------------------

_RUSSIAN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (
            r"^YAML syntax: (.*) that is never closed \((.*)\)$",
            r"Не закрыто: \1 — проверьте кавычки и скобки",
        ),
        (
            r"^YAML syntax: (.*)$",
            r"Ошибка разметки YAML (\1): проверьте кавычки, двоеточия и отступы",
        ),
        (r"^duplicate key '(.*)'$", r"Ключ «\1» повторяется"),
        (r"^unknown response '(\w+)'$", r"Нет ответа «\1»"),
        (
            r"^unknown slot '(.+?)' in template \{(.*)\}$",
            r"В шаблоне {\2} неизвестное поле «\1»: такого слота нет",
        ),
        (r"^unknown slot '(.+?)' in (.*)$", r"Неизвестное поле «\1» (\2): такого слота нет"),
        (r"^unknown filter \|(\w+) \(known: (.*)\)$", r"Неизвестный фильтр |\1 (есть: \2)"),
        (
            r"^unknown intent '(\w+)'.*$",
            r"Неизвестный интент «\1»: его нет в обучающих фразах (nlu/)",
        ),
        (
            r"^intent '(\w+)' has no flow to answer it$",
            r"На интент «\1» не отвечает ни один сценарий",
        ),
        (
            r"^missing response: intent '(\w+)' has no flow.*$",
            r"На интент «\1» не отвечает ни один сценарий: добавьте intent: \1 в сценарий",
        ),
        (r"^missing response '(\w+)' \((.*)\)$", r"Не хватает обязательного ответа «\1» (\2)"),
        (r"^unknown flow '(\w+)'.*$", r"Нет сценария «\1»"),
        (r"^unknown step '(\w+)' in flow '(\w+)'$", r"В сценарии «\2» нет шага «\1»"),
        (
            r"^text is (\d+) characters; Telegram and VK allow (\d+)$",
            r"Текст длиной \1 символов, а Telegram и VK принимают не больше \2",
        ),
        (r"^text is empty$", r"Текст пустой"),
        (r"^text must be a string$", r"Текст должен быть строкой"),
        (r"^a response needs text, image or sticker$", r"Ответу нужен текст, картинка или стикер"),
        (r"^a response needs at least one variant$", r"У ответа должен быть хотя бы один вариант"),
        (r"^image file '(.*)' not found under .*$", r"Картинки «\1» нет среди файлов контента"),
        (
            r"^image must be .*$",
            r"Картинка — это путь к файлу в контенте (media/...) или ссылка http(s)",
        ),
        (
            r"^url '(.*)' must start with .*$",
            r"Ссылка «\1» должна начинаться с https://, http:// или tg://",
        ),
        (
            r"^button title '(.*)' is (\d+) characters; .*$",
            r"Надпись кнопки «\1» — \2 символов: для VK слишком длинная",
        ),
        (
            r"^a button needs a `title` and .*$",
            r"Кнопке нужна надпись (title) и куда она ведёт: intent, flow, goto, url или request",
        ),
        (
            r"^button '(.*)' needs exactly one of .*$",
            r"Кнопка «\1» должна вести ровно в одно место: intent, flow, goto, url или request",
        ),
        (
            r"^unknown key '(\w+)' in a response \(allowed: (.*)\)$",
            r"Неизвестное поле «\1» в ответе (можно: \2)",
        ),
        (r"^response '(\w+)' is never used$", r"Ответ «\1» нигде не используется"),
        (r"^response '(\w+)' already defined in (.*)$", r"Ответ «\1» уже есть в \2"),
        (
            r"^flow '(\w+)' has no intent and nothing leads to it$",
            r"К сценарию «\1» не ведёт ни интент, ни кнопка",
        ),
        (r"^flow '(\w+)' is defined twice$", r"Сценарий «\1» описан дважды"),
        (r"^condition '(.*)' is not valid: (.*)$", r"Условие «\1» записано с ошибкой: \2"),
        (r"^no dialog files .*$", r"Нет ни одного файла сценариев (dialogs/*.yml)"),
        (r"^empty example$", r"Пустой пример фразы"),
        (r"^intent '(\w+)' has no examples$", r"У интента «\1» нет примеров"),
    ]
]


def russian(message: str) -> str:
    for pattern, text in _RUSSIAN:
        if pattern.match(message):
            return pattern.sub(text, message)
    return message


def problem_json(problem: Problem, field: str | None = None) -> dict[str, Any]:
    file = problem.file.removeprefix("content/")
    return {
        "file": file,
        "line": problem.line,
        "col": problem.col,
        "warning": problem.warning,
        "message": russian(problem.message),
        "original": problem.message,
        "where": f"{file}:{problem.line}:{problem.col}",
        "field": field,
    }


# -- an intent's examples --------------------------------------------------------------------


def _intent_index(src: Source, name: str) -> int:
    items = (src.data or {}).get("nlu") if isinstance(src.data, dict) else None
    for i, item in enumerate(items or []):
        if isinstance(item, dict) and item.get("intent") == name:
            return i
    raise FormError(f"в файле {src.file} нет интента «{name}»")


def intent_examples(text: str, file: str, name: str) -> list[str]:
    """The examples of intent `name` in an NLU file, one per item (annotations kept)."""
    src = _source(text, file)
    item = src.data["nlu"][_intent_index(src, name)]
    raw = item.get("examples")
    if not isinstance(raw, str):
        raise FormError("примеры записаны не блоком `examples: |`: правьте их в режиме YAML")
    return [ln.strip()[2:] for ln in raw.splitlines() if ln.strip().startswith("- ")]


def replace_examples(text: str, file: str, name: str, examples: list[str]) -> str:
    """The NLU file with intent `name`'s `examples: |` block made of `examples` (blank ones
    dropped); every other line unchanged."""
    src = _source(text, file)
    path = ("nlu", _intent_index(src, name), "examples")
    block = src.blocks.get(path)
    if block is None:
        raise FormError("примеры записаны не блоком `examples: |`: правьте их в режиме YAML")
    first = block[0] - 1
    lines = text.splitlines(keepends=True)
    if first >= len(lines):
        raise FormError("у интента пустой блок примеров: правьте его в режиме YAML")
    col = len(lines[first]) - len(lines[first].lstrip(" "))  # the block's indentation
    end = first
    while end < len(lines):
        line = lines[end]
        if line.strip() and len(line) - len(line.lstrip(" ")) < col:
            break
        end += 1
    while end > first and not lines[end - 1].strip():
        end -= 1
    cleaned = [" ".join(e.split()) for e in examples if e.strip()]
    if not cleaned:
        raise FormError("у интента должен быть хотя бы один пример")
    body = "".join(f"{' ' * col}- {e}\n" for e in cleaned)
    return "".join(lines[:first]) + body + "".join(lines[end:])


# -- a flow as structured steps --------------------------------------------------------------

STEP_KINDS = (
    "say", "ask", "call", "if", "goto", "flow", "use", "handoff", "ticket", "set", "verify",
    "route", "end",
)  # fmt: skip


def _yaml_of(value: Any) -> str:
    if isinstance(value, str) and "\n" not in value and value:
        try:
            if yaml.safe_load(value) == value:  # reads back as itself: shown plain
                return value
        except yaml.YAMLError:
            pass
    text = yaml.dump(
        value, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100,
        default_flow_style=False,
    )  # fmt: skip
    return text.removesuffix("...\n")  # a plain scalar's document end


def flow_fields(text: str, file: str, name: str) -> dict[str, Any]:
    """Flow `name` as {title, intents, steps: [{kind, id, fields: [{key, value}]}]}: each
    step's kind, its id, and each of its keys with the value as YAML text; FormError when the
    flow uses anchors (edit it as YAML)."""
    src = _source(text, file)
    raw = ((src.data or {}).get("flows") or {}).get(name)
    if not isinstance(raw, dict):
        raise FormError(f"в файле {file} нет сценария «{name}»")
    block = _block_of(text, src, ("flows", name))[2]
    if re.search(r"(^|[\s\[{,])[&*][A-Za-z_]", block):
        raise FormError("в сценарии есть якоря YAML (& или *): правьте его в режиме YAML")
    steps = raw.get("steps")
    if not isinstance(steps, list):
        raise FormError("у сценария нет списка шагов: правьте его в режиме YAML")
    out: list[dict[str, Any]] = []
    for step in steps:
        if isinstance(step, str):
            out.append({"kind": step, "id": "", "fields": []})
            continue
        if not isinstance(step, dict):
            raise FormError("шаг записан не так, как ждёт форма: правьте его в режиме YAML")
        kind = next((k for k in step if k in STEP_KINDS), "")
        fields = [
            {"key": str(k), "value": _yaml_of(v)} for k, v in step.items() if k not in ("id",)
        ]
        out.append({"kind": kind, "id": str(step.get("id") or ""), "fields": fields})
    intents = raw.get("intent") or raw.get("intents") or []
    return {
        "title": str(raw.get("title") or ""),
        "intents": [intents] if isinstance(intents, str) else [str(i) for i in intents],
        "steps": out,
    }


def _value(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (строка {mark.line + 1})" if mark is not None else ""
        raise FormError(f"{where}: значение записано с ошибкой YAML{at}") from exc


def replace_flow(text: str, file: str, name: str, fields: dict[str, Any]) -> str:
    """The file with flow `name`'s steps (and title) rewritten from the form; other keys of the
    flow and every other line of the file unchanged."""
    src = _source(text, file)
    raw = ((src.data or {}).get("flows") or {}).get(name)
    if not isinstance(raw, dict):
        raise FormError(f"в файле {file} нет сценария «{name}»")
    steps: list[Any] = []
    for n, step in enumerate(fields.get("steps") or [], 1):
        kind = str(step.get("kind") or "")
        items = step.get("fields") or []
        if kind == "end" and not items:
            steps.append("end")
            continue
        out: dict[str, Any] = {}
        if step.get("id"):
            out["id"] = str(step["id"]).strip()
        for item in items:
            key = str(item.get("key") or "").strip()
            if key:
                out[key] = _value(str(item.get("value") or ""), f"шаг {n}, поле {key}")
        if not out:
            raise FormError(f"шаг {n} пустой")
        steps.append(out)
    if not steps:
        raise FormError("у сценария должен быть хотя бы один шаг")
    flow = dict(raw)
    if fields.get("title"):
        flow["title"] = str(fields["title"])
    flow["steps"] = steps
    start, end, _old = _block_of(text, src, ("flows", name))
    indent = src.marks[("flows", name)][1] - 1
    lines = text.splitlines(keepends=True)
    return "".join(lines[:start]) + _dump(name, flow, indent) + "".join(lines[end:])


def step_of(text: str, file: str, name: str, problem: Problem) -> str | None:
    """Which step of flow `name` a problem is in: `step0`, `step1`, ... (None: elsewhere)."""
    try:
        src = parse(text, file)
    except ContentError:
        return None
    where = (problem.line, problem.col)
    best: tuple[tuple[int, int], int, tuple[Any, ...]] | None = None
    for path, mark in src.marks.items():
        if path[:3] != ("flows", name, "steps") or len(path) < 4 or mark > where:
            continue
        key = (mark, len(path), path)
        if best is None or key[:2] > best[:2]:
            best = key
    return f"step{best[2][3]}" if best is not None else None
