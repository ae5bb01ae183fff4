"""Reading Rasa 3.x NLU training data (`version: "3.1"`, `nlu:` items) for the embedded engine.

The same files train a real Rasa server, so only Rasa's format is accepted. Errors name the file
and line (`file:line: message`) so a content editor can fix them without a programmer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# [text](entity), [text]{"entity": "x", ...} and [text]{"entity": "x", "value": "y"}
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<name>[^)]+)\)|\{(?P<json>[^}]*)\})")
_ENTITY_IN_JSON = re.compile(r'"entity"\s*:\s*"([^"]+)"')


class TrainingDataError(ValueError):
    """Unusable training data; str() is one `file:line: message` per problem."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str  # annotations removed
    intent: str
    entities: tuple[tuple[str, int, int], ...] = ()  # (entity, start, end) in `text`
    source: str = ""  # file:line, for error messages and reports


@dataclass(slots=True)
class TrainingData:
    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # variant (lowercase) -> canonical value
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.examples})

    def fingerprint(self) -> str:
        """Changes whenever anything that affects training changes (for model caching)."""
        h = hashlib.sha256()
        for ex in self.examples:
            h.update(f"{ex.intent}\t{ex.text}\t{ex.entities}\n".encode())
        for key in sorted(self.synonyms):
            h.update(f"syn\t{key}\t{self.synonyms[key]}\n".encode())
        for name in sorted(self.regexes):
            h.update(f"re\t{name}\t{self.regexes[name]}\n".encode())
        for name in sorted(self.lookups):
            h.update(f"lookup\t{name}\t{self.lookups[name]}\n".encode())
        return h.hexdigest()[:16]


def strip_annotations(text: str) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """`мой [8916...](phone)` -> ("мой 8916...", (("phone", 4, 15),))."""
    out: list[str] = []
    entities: list[tuple[str, int, int]] = []
    pos = 0
    length = 0
    for m in _ANNOTATION.finditer(text):
        before = text[pos : m.start()]
        out.append(before)
        length += len(before)
        value = m.group("text")
        name = m.group("name")
        if name is None:
            found = _ENTITY_IN_JSON.search(m.group("json") or "")
            name = found.group(1) if found else None
        if name:
            entities.append((name, length, length + len(value)))
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), tuple(entities)


def load_training_data(paths: list[Path]) -> TrainingData:
    """Load every `*.yml` file (or directory of them) given; raise TrainingDataError listing
    every problem found, never a half-loaded result."""
    files: list[Path] = []
    for path in paths:
        files += (
            sorted(path.glob("*.yml")) + sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        )
    data = TrainingData(files=files)
    problems: list[str] = []
    for file in files:
        problems += _load_file(file, data)
    if not files:
        problems.append(f"{', '.join(map(str, paths))}: no training files (*.yml) found")
    elif not data.examples and not problems:
        problems.append(f"{files[0]}: no intent examples found in {len(files)} file(s)")
    if problems:
        raise TrainingDataError("\n".join(problems))
    return data


def _load_file(file: Path, data: TrainingData) -> list[str]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{file}: cannot read: {exc.strerror}"]
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        return [f"{where}: invalid YAML: {exc.problem}"]
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        return [f"{file}:1: expected a mapping with `version` and `nlu`"]
    top = {k.value: v for k, v in root.value}
    problems: list[str] = []
    version = top.get("version")
    if version is None or version.value not in ("3.0", "3.1"):
        problems.append(f'{file}:1: `version: "3.1"` is required (Rasa 3.x format)')
    nlu = top.get("nlu")
    if nlu is None:
        return problems
    if not isinstance(nlu, yaml.SequenceNode):
        return [*problems, f"{file}:{nlu.start_mark.line + 1}: `nlu` must be a list"]
    for item in nlu.value:
        problems += _load_item(file, item, data)
    return problems


def _load_item(file: Path, node: yaml.Node, data: TrainingData) -> list[str]:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        return [f"{file}:{line}: each `nlu` item must be a mapping (intent/synonym/regex/lookup)"]
    item: dict[str, Any] = {k.value: v for k, v in node.value}
    kinds = [k for k in ("intent", "synonym", "regex", "lookup") if k in item]
    if len(kinds) != 1:
        return [f"{file}:{line}: an item needs exactly one of intent, synonym, regex, lookup"]
    kind = kinds[0]
    name = item[kind].value if isinstance(item[kind], yaml.ScalarNode) else None
    if not name:
        return [f"{file}:{line}: `{kind}` needs a name"]
    examples = item.get("examples")
    if not isinstance(examples, yaml.ScalarNode):
        return [f"{file}:{line}: {kind} {name!r} needs `examples: |` with `- ` lines"]
    first_line = examples.start_mark.line + (2 if examples.style == "|" else 1)
    lines = _example_lines(examples.value)
    if not lines:
        return [f"{file}:{line}: {kind} {name!r} has no examples"]
    problems: list[str] = []
    for offset, raw in lines:
        where = f"{file}:{first_line + offset}"
        if kind == "intent":
            text, entities = strip_annotations(raw)
            if not text.strip():
                problems.append(f"{where}: empty example")
                continue
            data.examples.append(Example(text, name, entities, where))
        elif kind == "synonym":
            data.synonyms[raw.lower()] = name
        elif kind == "regex":
            try:
                re.compile(raw)
            except re.error as exc:
                problems.append(f"{where}: regex {name!r} does not compile: {exc}")
                continue
            data.regexes.setdefault(name, []).append(raw)
        else:
            data.lookups.setdefault(name, []).append(raw)
    return problems


def _example_lines(block: str) -> list[tuple[int, str]]:
    """The `- text` lines of an `examples: |` block with their line offsets."""
    out = []
    for offset, line in enumerate(block.splitlines()):
        stripped = line.strip()
        if stripped.startswith("- "):
            out.append((offset, stripped[2:].strip()))
        elif stripped == "-":
            out.append((offset, ""))
    return out
