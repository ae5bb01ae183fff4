"""What the compiler's passes share while content compiles: the problems found so far, the parts
compiled already, and the references checked only once every file is read (they may point
across files)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogs import expr
from dialogs.content.actions import ActionTable
from dialogs.content.model import BotSettings, Flow, Response, SlotDef
from dialogs.yamlsrc import PathKey, Problem, Source


@dataclass
class Pending:
    """Things checked after every file is read (they may refer across files)."""

    names: list[tuple[Source, PathKey, str, str]] = field(default_factory=list)
    exact_names: list[tuple[Source, int, int, str, str]] = field(default_factory=list)
    intents: list[tuple[Source, PathKey, str]] = field(default_factory=list)
    flows: list[tuple[Source, PathKey, str]] = field(default_factory=list)
    steps: list[tuple[Source, PathKey, str, str]] = field(default_factory=list)
    response_refs: list[tuple[Source, PathKey, str]] = field(default_factory=list)
    articles: list[tuple[Source, PathKey, str]] = field(default_factory=list)


class Compilation:
    """The state of one `load_content` run."""

    def __init__(
        self, content_dir: Path, intents: set[str], groups: set[str] | None, actions: ActionTable
    ) -> None:
        self.content_dir = content_dir
        self.known_intents = intents
        self.groups = groups
        self.actions = actions
        self.problems: list[Problem] = []
        self.responses: dict[str, Response] = {}
        self.slots: dict[str, SlotDef] = {}
        self.flows: dict[str, Flow] = {}
        self.intent_flows: dict[str, str] = {}
        self.command_flows: dict[str, str] = {}
        self.start_flows: dict[str, str] = {}  # `starts:` word -> flow
        self.bot = BotSettings()
        self.result_names: set[str] = set()
        self.pending = Pending()
        self.used_responses: set[str] = set()
        self.entry_labels: dict[str, set[str]] = {}  # flow -> step ids buttons lead to
        self.flow_refs: set[str] = set()  # flows a step or a button starts
        self.raw_responses: dict[str, tuple[Source, PathKey, Any]] = {}
        self.flow_sources: dict[str, tuple[Source, PathKey]] = {}

    def err(self, src: Source, path: PathKey, message: str) -> None:
        self.problems.append(src.problem(path, message))

    def warn(self, src: Source, path: PathKey, message: str) -> None:
        self.problems.append(src.problem(path, message, warning=True))

    def err_at(self, src: Source, line: int, col: int, message: str) -> None:
        """A problem at an exact position (inside a text), not at a value's start."""
        self.problems.append(Problem(src.file, line, col, message))

    def condition(self, src: Source, path: PathKey, raw: Any) -> ast.Expression | None:
        """An `if:` / `from:` expression, compiled; its names are checked later."""
        try:
            tree = expr.compile_condition(str(raw))
        except expr.ExprError as exc:
            self.err(src, path, str(exc))
            return None
        for name in expr.names_in(tree):
            self.pending.names.append((src, path, name, "condition"))
        return tree


def display_name(path: Path, content_dir: Path) -> str:
    """How problems name a content file: relative to the content folder's parent
    (`content/dialogs/bot.yml`), or as given when it lies elsewhere."""
    try:
        return str(path.relative_to(content_dir.parent))
    except ValueError:
        return str(path)
