"""Loading content: read every `content/dialogs/*.yml`, compile it in passes (sections and bot
settings, responses, slots, flows, knowledge-base articles from `content/knowledge/*.md`), check what may refer across files (names, intents,
flows, steps, responses, the slots actions need) and what the engine needs (reserved responses,
a flow for every intent). `load_content` is the entry point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dialogs.actions import Actions
from dialogs.content.actions import ActionTable
from dialogs.content.flows import FlowBuilder, check_levels, compile_flow
from dialogs.content.knowledge import compile_articles, index, knowledge_files
from dialogs.content.model import (
    BUILTIN_NAMES,
    RESERVED,
    Article,
    Ask,
    BotSettings,
    Call,
    Content,
    Flow,
    Instr,
    Response,
    Say,
    SlotDef,
)
from dialogs.content.responses import response
from dialogs.content.slots import compile_slot
from dialogs.content.state import Compilation, display_name
from dialogs.yamlsrc import ContentError, PathKey, Problem, Source, load

DIALOGS_DIR = "dialogs"
SECTIONS = ("version", "bot", "responses", "slots", "flows")
Defs = list[tuple[Source, str, Any]]  # (file, name, raw data) of a slot or a flow


def content_files(content_dir: Path) -> list[Path]:
    """Every file the content is made of: dialogs, then knowledge-base articles."""
    return sorted((content_dir / DIALOGS_DIR).glob("*.y*ml")) + knowledge_files(content_dir)


def load_content(
    content_dir: Path,
    intents: Iterable[str],
    *,
    actions: Actions,
    groups: Iterable[str] | None = None,
) -> Content:
    """Load and check everything against the NLU's `intents`, the flow `actions` the app runs
    (dialogs/actions.py) and the skill `groups` (None: any); raises ContentError listing every
    problem."""
    files = content_files(content_dir)
    problems: list[Problem] = []
    sources: list[Source] = []
    for path in files:
        if path.suffix == ".md":
            continue  # articles: compile_articles
        try:
            sources.append(load(path, display_name(path, content_dir)))
        except ContentError as exc:
            problems += exc.problems
    unparsed = bool(problems)
    if all(path.suffix == ".md" for path in files):
        problems.append(
            Problem(str(content_dir / DIALOGS_DIR), 1, 1, "no dialog files (*.yml) found")
        )
    compiler = Compiler(
        content_dir,
        set(intents),
        set(groups) if groups is not None else None,
        ActionTable.of(actions),
    )
    compiler.run(sources)
    problems += [p for p in compiler.problems if not (unparsed and _follows_from_unparsed(p))]
    problems = list(dict.fromkeys(problems))  # a mistake inside a YAML anchor shows once
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ContentError(errors + [p for p in problems if p.warning])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return Content(
        responses=compiler.responses,
        slots=compiler.slots,
        flows=compiler.flows,
        intent_flows=compiler.intent_flows,
        bot=compiler.bot,
        fingerprint=digest.hexdigest()[:16],
        warnings=tuple(p for p in problems if p.warning),
        content_dir=content_dir,
        command_flows=compiler.command_flows,
        start_flows=compiler.start_flows,
        articles=compiler.articles,
        knowledge=index(compiler.articles, content_dir),
    )


# What a file that does not parse causes elsewhere: its responses, flows and intents are missing.
_CASCADE = ("has no flow", "missing response", "unknown response", "unknown flow", "unknown step")


def _follows_from_unparsed(problem: Problem) -> bool:
    """With a file that does not parse, the checks across files report its missing responses
    and flows at every use (one missing quote: dozens of lines in other files); those follow
    from the syntax error and are left out until it is fixed."""
    return any(marker in problem.message for marker in _CASCADE)


class Compiler(Compilation):
    """The passes over every file's data; `actions` is what `call:` steps may name."""

    def __init__(
        self,
        content_dir: Path,
        intents: set[str],
        groups: set[str] | None,
        actions: ActionTable,
    ) -> None:
        super().__init__(content_dir, intents, groups, actions)
        self._builders: list[FlowBuilder] = []
        self.articles: dict[str, Article] = {}

    # -- passes ---------------------------------------------------------------------------

    def run(self, sources: list[Source]) -> None:
        flow_defs: Defs = []
        slot_defs: Defs = []
        for src in sources:
            found = self._sections(src)
            if found is not None:
                slot_defs += found[0]
                flow_defs += found[1]
        for name, (src, path, raw) in self.raw_responses.items():
            self.responses[name] = response(self, src, path, raw, name, flow=None)
        for src, name, raw in slot_defs:
            if name in self.slots:
                self.err(src, ("slots", name), f"slot {name!r} is defined twice")
                continue
            slot = compile_slot(self, src, name, raw)
            if slot is not None:
                self.slots[name] = slot
        for src, name, raw in flow_defs:
            if name in self.flows or name in self.flow_sources:
                self.err(src, ("flows", name), f"flow {name!r} is defined twice")
                continue
            self.flow_sources[name] = (src, ("flows", name))
            compiled = compile_flow(self, src, name, raw)
            if compiled is not None:
                self.flows[name], builder = compiled
                self._builders.append(builder)
        for builder in self._builders:
            builder.reachability()
        check_levels(self, self._builders)
        self.articles = compile_articles(self, self.content_dir)
        self._check_pending()
        self._check_coverage(sources)

    def _sections(self, src: Source) -> tuple[Defs, Defs] | None:
        """One file's sections: bot settings and responses are taken in now (responses are
        compiled once every file is read); its slots and flows are returned."""
        data = src.data
        if data is None:
            return None
        if not isinstance(data, dict):
            self.err(src, (), "a dialogs file must be a mapping with responses/slots/flows")
            return None
        for key in data:
            if key not in SECTIONS:
                self.err(
                    src,
                    (key,),
                    f"unknown section {key!r} (expected responses, slots, flows, bot)",
                )
        if "bot" in data:
            self._bot(src, data["bot"])
        for name, raw in self._mapping(src, ("responses",), data.get("responses")):
            if name in self.raw_responses:
                other = self.raw_responses[name][0]
                self.err(
                    src,
                    ("responses", name),
                    f"response {name!r} already defined in {other.file}",
                )
                continue
            self.raw_responses[name] = (src, ("responses", name), raw)
        slots = [(src, n, r) for n, r in self._mapping(src, ("slots",), data.get("slots"))]
        flows = [(src, n, r) for n, r in self._mapping(src, ("flows",), data.get("flows"))]
        return slots, flows

    def _mapping(self, src: Source, path: PathKey, value: Any) -> list[tuple[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, dict):
            self.err(src, path, f"{path[-1]} must be a mapping of names")
            return []
        out = []
        for key, item in value.items():
            if not isinstance(key, str) or not key.replace("_", "").isalnum():
                self.err(src, (*path, key), f"name {key!r} must be letters, digits and _")
                continue
            out.append((key, item))
        return out

    def _bot(self, src: Source, raw: Any) -> None:
        if not isinstance(raw, dict):
            self.err(src, ("bot",), "bot must be a mapping")
            return
        defaults = self.bot
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if not hasattr(defaults, key):
                self.err(src, ("bot", key), f"unknown bot setting {key!r}")
                continue
            expected = type(getattr(defaults, key))
            if expected is tuple:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    self.err(src, ("bot", key), f"bot.{key} must be a list of texts")
                    continue
                value = tuple(v.lower() for v in value)
            elif not isinstance(value, expected) or isinstance(value, bool):
                self.err(src, ("bot", key), f"bot.{key} must be a {expected.__name__}")
                continue
            values[key] = value
        self.bot = BotSettings(
            **{**{k: getattr(defaults, k) for k in defaults.__slots__}, **values}
        )

    # -- once every file is read ------------------------------------------------------------

    def _check_pending(self) -> None:
        self._check_references()
        self._check_names()
        self._check_actions()
        # Resolve response references now that every response is known.
        self._resolve_refs()

    def _check_references(self) -> None:
        """Responses, intents, flows and steps named anywhere must exist."""
        p = self.pending
        for src, path, ref in p.response_refs:
            if ref not in self.responses:
                self.err(src, path, f"unknown response {ref!r}")
        for src, path, intent in p.intents:
            if intent not in self.known_intents:
                self.err(src, path, f"unknown intent {intent!r} (not in content/nlu)")
            elif intent not in self.intent_flows:
                self.err(src, path, f"intent {intent!r} has no flow to answer it")
        for src, path, flow in p.flows:
            if flow not in self.flows and flow not in self.flow_sources:
                self.err(src, path, f"unknown flow {flow!r}")
        for src, path, article in p.articles:
            if article not in self.articles:
                self.err(
                    src, path, f"unknown article {article!r} (no content/knowledge/{article}.md)"
                )
        for src, path, flow, label in p.steps:
            target = self.flows.get(flow)
            if target is None:
                if flow not in self.flow_sources:
                    self.err(src, path, f"unknown flow {flow!r} in goto")
            elif label not in target.labels:
                self.err(src, path, f"unknown step {label!r} in flow {flow!r}")

    def _check_names(self) -> None:
        """Names used in templates, conditions, `set:`... must be slots, results or built-ins."""
        known = set(self.slots) | self.result_names | BUILTIN_NAMES
        # A choice from a list result also keeps the chosen item: `tariff_choice.name`.
        known |= {f"{n}_choice" for n, slot in self.slots.items() if slot.choices_from}
        for src, path, name, what in self.pending.names:
            if name.split(".")[0] not in known:  # `lines: {for: offices.near}` names a result
                self.err(src, path, f"unknown slot {name!r} in {what}")
        for src, line, col, name, what in self.pending.exact_names:
            if name not in known:
                self.err_at(src, line, col, f"unknown slot {name!r} in {what}")

    def _check_actions(self) -> None:
        """The slots the actions the flows call need must be declared."""
        called = (i.action for f in self.flows.values() for i in f.program if isinstance(i, Call))
        for message in self.actions.missing_slots(called, self.slots):
            src, _path = next(iter(self.flow_sources.values()))
            self.err(src, ("slots",), message)

    def _resolve_refs(self) -> None:
        def fix(r: Response | None) -> Response | None:
            if r is None or r.variants:
                return r
            return self.responses.get(r.name, r)

        for name, slot in list(self.slots.items()):
            prompt = fix(slot.prompt)
            assert prompt is not None
            self.slots[name] = SlotDef(
                slot.name,
                slot.type,
                prompt,
                fix(slot.retry),
                slot.choices,
                slot.choices_from,
                slot.prefill,
            )
        for name, flow in list(self.flows.items()):
            program: list[Instr] = []
            for ins in flow.program:
                if isinstance(ins, Say):
                    resolved = fix(ins.response)
                    assert resolved is not None
                    ins = Say(resolved)
                elif isinstance(ins, Ask):
                    ins = Ask(ins.slot, fix(ins.prompt), ins.force)
                program.append(ins)
            self.flows[name] = Flow(
                flow.name, flow.title, flow.intents, tuple(program), flow.labels
            )

    def _check_coverage(self, sources: list[Source]) -> None:
        """What the engine needs: every reserved response, a flow for every NLU intent."""
        # Missing things are reported at the file holding the bot's own responses (bot.yml).
        anchor = next(
            (src for src, _p, _r in self.raw_responses.values() if src.data and "bot" in src.data),
            sources[0] if sources else Source("content/dialogs", None),
        )
        for name, why in RESERVED.items():
            if name not in self.responses:
                self.err(anchor, (), f"missing response {name!r} ({why})")
            self.used_responses.add(name)
        for intent in sorted(self.known_intents - set(self.intent_flows)):
            self.err(
                anchor,
                (),
                f"missing response: intent {intent!r} has no flow (add `intent: {intent}` to a flow)",
            )
        self._warn_unused()

    def _warn_unused(self) -> None:
        """Responses nothing says and flows nothing starts are probably mistakes."""
        for name, (src, path, _raw) in self.raw_responses.items():
            if name not in self.used_responses:
                self.warn(src, path, f"response {name!r} is never used")
        for name, (src, path) in self.flow_sources.items():
            flow = self.flows.get(name)
            if (
                flow is not None
                and not flow.intents
                and name not in self.flow_refs
                and name not in self.entry_labels
                and name not in self.command_flows.values()
                and name not in self.start_flows.values()
            ):
                self.warn(src, path, f"flow {name!r} has no intent and nothing leads to it")
