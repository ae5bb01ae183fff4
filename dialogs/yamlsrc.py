"""YAML with positions: content files load into plain data plus a map from each value's path
to its `line:col`, so every problem an editor causes is reported where it is in the file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the content, as `file:line:col: message`."""

    file: str
    line: int
    col: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"{self.file}:{self.line}:{self.col}: {kind}{self.message}"


@dataclass(slots=True)
class Source:
    """One loaded file: its data and where each value is."""

    file: str
    data: Any
    marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    blocks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)  # `|` texts: 1st line

    def position_in_text(self, path: PathKey, text: str, offset: int) -> tuple[int, int]:
        """Line and column of character `offset` of the text at `path` (exact in `|` blocks)."""
        block = self.blocks.get(path)
        if block is None:
            return self.at(path)
        before = text[:offset]
        line_start = before.rfind("\n") + 1
        return block[0] + before.count("\n"), block[1] + offset - line_start

    def at(self, path: PathKey) -> tuple[int, int]:
        """Line and column of the value at `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return mark
        return (1, 1)

    def problem(self, path: PathKey, message: str, *, warning: bool = False) -> Problem:
        line, col = self.at(path)
        return Problem(self.file, line, col, message, warning)


class ContentError(ValueError):
    """Content that cannot be used; str() lists every problem, one `file:line:col: message` each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# libyaml's composer when present (about 5x faster; the same nodes and marks), else pure Python.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(path: Path, display: str | None = None) -> Source:
    """Parse one YAML file; a syntax error raises ContentError with its position."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentError([Problem(name, 1, 1, f"cannot read: {exc}")]) from exc
    return parse(text, name)


def parse(text: str, name: str, first_line: int = 1) -> Source:
    """Parse YAML text that starts at line `first_line` of the file `name` (a Markdown file's
    front matter starts at line 2); a syntax error raises ContentError with its position."""
    if first_line > 1:
        text = "\n" * (first_line - 1) + text  # positions stay those of the file
    try:
        node = yaml.compose(text, Loader=LOADER)
    except yaml.MarkedYAMLError as exc:
        # An unclosed quote or bracket is reported where it was opened, not at the end of the file.
        opened = exc.context and ("quoted scalar" in exc.context or "flow" in exc.context)
        mark = (exc.context_mark if opened else None) or exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax: {exc.problem or exc.context}"
        if mark and "undefined alias" in message and "*" not in message:  # libyaml omits it
            found = re.match(r"\*?([^\s,\]}]+)", text.splitlines()[mark.line][mark.column :])
            message += f" *{found.group(1)}" if found else ""
        if opened:
            message = f"YAML syntax: {exc.context} that is never closed ({exc.problem})"
        raise ContentError([Problem(name, line, col, message)]) from exc
    source = Source(name, None)
    if node is not None:
        source.data = _build(node, (), source, name)
    return source


_CONSTRUCTOR = yaml.SafeLoader("")


def _build(node: yaml.Node, path: PathKey, source: Source, name: str) -> Any:
    marks = source.marks
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _CONSTRUCTOR.construct_object(key_node)
            if key in out:
                line = key_node.start_mark.line + 1
                col = key_node.start_mark.column + 1
                raise ContentError([Problem(name, line, col, f"duplicate key {key!r}")])
            out[key] = _build(value_node, (*path, key), source, name)
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), source, name) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.ScalarNode) and node.style == "|":
        # The text starts on the line after the `|`, at the block's indentation.
        first = node.end_mark.buffer or ""
        indent = _block_indent(first, node.start_mark.index)
        source.blocks[path] = (node.start_mark.line + 2, indent + 1)
    return _CONSTRUCTOR.construct_object(node)


def _block_indent(buffer: str, indicator: int) -> int:
    """Indentation of the first content line of a `|` block whose indicator is at `indicator`."""
    start = buffer.find("\n", indicator) + 1
    if start <= 0:
        return 0
    line = buffer[start : buffer.find("\n", start) if "\n" in buffer[start:] else len(buffer)]
    return len(line) - len(line.lstrip(" "))
