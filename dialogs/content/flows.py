"""Compiling flows (`flows:`): a flow's intents, commands and title, and its nested steps into a
flat program of instructions with jumps (`FlowBuilder`), then which steps nothing leads to.

Each kind of step (say, ask, call, if, goto, flow, use, handoff, ticket, set, verify, route,
end) has its own method, chosen through `STEP_KINDS`; what every step must satisfy is checked in
one place first (`FlowBuilder.kind_of`). Once every flow is built, `check_levels` proves that
every action needing a verified subscriber runs only after a `verify:` step that ensures it, on
every path into it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dialogs import expr
from dialogs.content import limits
from dialogs.content.model import (
    LEVELS,
    Ask,
    Call,
    End,
    Flow,
    Handoff,
    Instr,
    Jump,
    JumpUnless,
    MakeTicket,
    Route,
    Say,
    SetSlots,
    ShowArticle,
    StartFlow,
    UseFlow,
    Verify,
    command_key,
)
from dialogs.content.responses import response_ref
from dialogs.content.state import Compilation
from dialogs.yamlsrc import PathKey, Source

# What may sit next to each kind of step (besides `id:`), in the order kinds are reported.
STEP_EXTRAS: dict[str, set[str]] = {
    "say": set(),
    "ask": {"prompt", "force"},
    "call": {"as", "on_error"},
    "if": {"then", "else"},
    "goto": set(),
    "flow": set(),
    "use": set(),
    "handoff": {"reason"},
    "ticket": {"details", "as"},
    "set": set(),
    "verify": set(),
    "route": set(),
    "end": set(),
}
STEP_KEYS = {"id", *STEP_EXTRAS, *(key for extras in STEP_EXTRAS.values() for key in extras)}
FLOW_KEYS = ("intent", "intents", "title", "commands", "starts", "steps")


def compile_flow(
    st: Compilation, src: Source, name: str, raw: Any
) -> tuple[Flow, FlowBuilder] | None:
    """One entry of `flows:`, and its builder (for the reachability check once every flow is
    built); None when it is too broken to use (the problem is reported)."""
    path: PathKey = ("flows", name)
    if not isinstance(raw, dict):
        st.err(src, path, "a flow needs `steps` (and usually `intent` and `title`)")
        return None
    for key in raw:
        if key not in FLOW_KEYS:
            st.err(
                src,
                (*path, key),
                f"unknown flow key {key!r} (allowed: {', '.join(FLOW_KEYS)})",
            )
    _commands(st, src, name, raw.get("commands"))
    _starts(st, src, name, raw.get("starts"))
    intents = _intents(st, src, name, raw)
    title = raw.get("title", name)
    limits.check_flow_title(st, src, (*path, "title"), str(title))
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        st.err(src, path, f"flow {name!r} needs a non-empty `steps` list")
        return None
    builder = FlowBuilder(st, src, name)
    builder.block(steps, (*path, "steps"))
    builder.finish()
    flow = Flow(
        name, str(title), tuple(str(i) for i in intents), tuple(builder.program), builder.labels
    )
    return flow, builder


def _intents(st: Compilation, src: Source, name: str, raw: dict[Any, Any]) -> list[Any]:
    """`intent:` or `intents:`, the NLU intents that start the flow."""
    path: PathKey = ("flows", name)
    intents = raw.get("intents") or ([raw["intent"]] if "intent" in raw else [])
    key = "intents" if "intents" in raw else "intent"
    for i, intent in enumerate(intents):
        ipath = (*path, key, i) if key == "intents" else (*path, key)
        st.pending.intents.append((src, ipath, str(intent)))
        if intent in st.intent_flows:
            st.err(
                src,
                ipath,
                f"intent {intent!r} already starts flow {st.intent_flows[intent]!r}",
            )
        else:
            st.intent_flows[str(intent)] = name
    return list(intents)


def _commands(st: Compilation, src: Source, name: str, raw: Any) -> None:
    """`commands:` exact texts ("/link", "связать аккаунты") that start the flow, even mid-form."""
    if raw is None:
        return
    path: PathKey = ("flows", name, "commands")
    if not isinstance(raw, list) or not raw:
        st.err(src, path, "`commands` must be a non-empty list of texts")
        return
    for i, text in enumerate(raw):
        key = command_key(str(text)) if isinstance(text, str | int) else ""
        if not key:
            st.err(src, (*path, i), "a command must be a non-empty text")
        elif key in st.command_flows and st.command_flows[key] != name:
            st.err(
                src,
                (*path, i),
                f"command {text!r} already starts flow {st.command_flows[key]!r}",
            )
        else:
            st.command_flows[key] = name


def _starts(st: Compilation, src: Source, name: str, raw: Any) -> None:
    """`starts:` words a request begins with that start the flow whatever else it says
    («жалоба: ...», «претензия»), outside forms."""
    if raw is None:
        return
    path: PathKey = ("flows", name, "starts")
    if not isinstance(raw, list) or not raw:
        st.err(src, path, "`starts` must be a non-empty list of words")
        return
    for i, word in enumerate(raw):
        key = command_key(str(word)) if isinstance(word, str) else ""
        if not key or key.startswith("/"):
            st.err(src, (*path, i), "a start word must be a non-empty word, not a /command")
        elif key in st.start_flows and st.start_flows[key] != name:
            st.err(src, (*path, i), f"{word!r} already starts flow {st.start_flows[key]!r}")
        else:
            st.start_flows[key] = name


class FlowBuilder:
    """Compiles a flow's nested steps into a flat program with jumps, then checks reachability."""

    def __init__(self, st: Compilation, src: Source, flow: str) -> None:
        self.st = st
        self.src = src
        self.flow = flow
        self.program: list[Instr] = []
        self.paths: list[PathKey] = []
        self.labels: dict[str, int] = {}
        self.label_paths: dict[str, PathKey] = {}
        self.fixups: list[tuple[int, str, PathKey]] = []  # (pc, label, path) for goto / on_error
        # (pc, [(words, step id or article id, path, is it an article)]) for each route
        self.route_fixups: list[tuple[int, list[tuple[tuple[str, ...], str, PathKey, bool]]]] = []
        self.step_starts: list[tuple[int, PathKey]] = []

    def emit(self, ins: Instr, path: PathKey) -> int:
        self.program.append(ins)
        self.paths.append(path)
        return len(self.program) - 1

    def err(self, path: PathKey, message: str) -> None:
        self.st.err(self.src, path, message)

    def block(self, steps: Any, path: PathKey) -> None:
        if not isinstance(steps, list):
            self.err(path, "steps must be a list")
            return
        for i, step in enumerate(steps):
            self.step((*path, i), step)

    def step(self, path: PathKey, raw: Any) -> None:
        self.step_starts.append((len(self.program), path))
        if raw == "end":
            self.emit(End(), path)
            return
        kind = self.kind_of(path, raw)
        if kind is not None:
            STEP_KINDS[kind](self, path, raw)

    def kind_of(self, path: PathKey, raw: Any) -> str | None:
        """The checks every step passes: a mapping of known keys doing exactly one thing, with
        only what that kind of step takes next to it; its `id:` becomes a label. None: no step."""
        if not isinstance(raw, dict):
            self.err(
                path, "a step is a mapping like `say: ...`, `ask: slot`, `call: action`, or `end`"
            )
            return None
        for key in raw:
            if key not in STEP_KEYS:
                self.err((*path, key), f"unknown step key {key!r}")
        if "id" in raw:
            self._label(path, str(raw["id"]))
        kinds = [k for k in STEP_KINDS if k in raw]
        if len(kinds) != 1:
            self.err(path, f"a step does exactly one thing; found {', '.join(kinds) or 'nothing'}")
            return None
        kind = kinds[0]
        allowed = {kind, "id", *STEP_EXTRAS[kind]}
        for key in raw:
            if key in STEP_KEYS and key not in allowed:
                extras = ", ".join(sorted(STEP_EXTRAS[kind])) or "nothing else"
                self.err(
                    (*path, key), f"`{key}` does not belong on a `{kind}` step (it takes {extras})"
                )
        return kind

    def _label(self, path: PathKey, label: str) -> None:
        if label in self.labels:
            self.err((*path, "id"), f"step id {label!r} is used twice in flow {self.flow!r}")
        self.labels[label] = len(self.program)
        self.label_paths[label] = (*path, "id")

    # -- one method per kind of step: (path of the step, the step's mapping) -------------------

    def say(self, path: PathKey, raw: dict[str, Any]) -> None:
        at = (*path, "say")
        self.emit(Say(response_ref(self.st, self.src, at, raw["say"], self.flow)), at)

    def ask(self, path: PathKey, raw: dict[str, Any]) -> None:
        at, slot = (*path, "ask"), str(raw["ask"])
        if slot not in self.st.slots:
            self.err(at, f"unknown slot {slot!r} (declare it under `slots:`)")
        prompt = (
            response_ref(self.st, self.src, (*path, "prompt"), raw["prompt"], self.flow)
            if "prompt" in raw
            else None
        )
        self.emit(Ask(slot, prompt, bool(raw.get("force", False))), at)

    def call(self, path: PathKey, raw: dict[str, Any]) -> None:
        at, action = (*path, "call"), str(raw["call"])
        named = str(raw["as"]) if "as" in raw else None
        into, problems = self.st.actions.check_call(action, named)
        for key, message in problems:
            self.err((*path, key), message)
        self.st.result_names.add(into)
        pc = self.emit(Call(action, into, None), at)
        if "on_error" in raw:
            self.fixups.append((pc, str(raw["on_error"]), (*path, "on_error")))

    def if_(self, path: PathKey, raw: dict[str, Any]) -> None:
        at = (*path, "if")
        cond = self.st.condition(self.src, at, raw["if"]) or expr.compile_condition("False")
        if "then" not in raw:
            self.err(path, "an `if` step needs `then:` steps")
        jump = self.emit(JumpUnless(cond, -1), at)
        self.block(raw.get("then", []), (*path, "then"))
        if "else" in raw:
            skip = self.emit(Jump(-1), (*path, "else"))
            self.program[jump] = JumpUnless(cond, len(self.program))
            self.block(raw["else"], (*path, "else"))
            self.program[skip] = Jump(len(self.program))
        else:
            self.program[jump] = JumpUnless(cond, len(self.program))

    def goto(self, path: PathKey, raw: dict[str, Any]) -> None:
        at = (*path, "goto")
        pc = self.emit(Jump(-1), at)
        self.fixups.append((pc, str(raw["goto"]), at))

    def start_flow(self, path: PathKey, raw: dict[str, Any]) -> None:
        at, target = (*path, "flow"), str(raw["flow"])
        self.st.pending.flows.append((self.src, at, target))
        self.st.flow_refs.add(target)
        self.emit(StartFlow(target), at)

    def use(self, path: PathKey, raw: dict[str, Any]) -> None:
        at, target = (*path, "use"), str(raw["use"])
        self.st.pending.flows.append((self.src, at, target))
        self.st.flow_refs.add(target)
        self.emit(UseFlow(target), at)

    def handoff(self, path: PathKey, raw: dict[str, Any]) -> None:
        at, group, groups = (*path, "handoff"), str(raw["handoff"]), self.st.groups
        if groups is not None and group not in groups:
            self.err(at, f"unknown skill group {group!r} (settings: {', '.join(sorted(groups))})")
        self.emit(Handoff(group, str(raw["reason"]) if "reason" in raw else None), at)

    def ticket(self, path: PathKey, raw: dict[str, Any]) -> None:
        details = raw.get("details") or []
        if not isinstance(details, list):
            self.err((*path, "details"), "details must be a list of slot names")
            details = []
        for i, d in enumerate(details):
            self.st.pending.names.append(
                (self.src, (*path, "details", i), str(d), "ticket details")
            )
        into = str(raw.get("as", "ticket"))
        self.st.result_names.add(into)
        kind = str(raw["ticket"])
        self.emit(MakeTicket(kind, tuple(str(d) for d in details), into), (*path, "ticket"))

    def set_(self, path: PathKey, raw: dict[str, Any]) -> None:
        at, values = (*path, "set"), raw["set"]
        if not isinstance(values, dict):
            self.err(at, "set needs a mapping of slot: value")
            return
        for k in values:
            self.st.pending.names.append((self.src, (*at, k), str(k), "set"))
        self.emit(SetSlots(tuple((str(k), v) for k, v in values.items())), at)

    def verify(self, path: PathKey, raw: dict[str, Any]) -> None:
        at, level = (*path, "verify"), str(raw["verify"])
        if level not in LEVELS[1:]:
            self.err(at, f"verify {level!r}: use `verified` (personal data) or `fresh` (step-up)")
            level = "verified"
        self.emit(Verify(level), at)

    def route(self, path: PathKey, raw: dict[str, Any]) -> None:
        """`route: [{match: [words...], goto: step}, ...]`: by the subscriber's own words; an
        entry's `article: <id>` instead of `goto` answers with that knowledge-base article."""
        at, entries = (*path, "route"), raw["route"]
        if not isinstance(entries, list) or not entries:
            self.err(at, "route needs a list of {match: [words], goto: step}")
            return
        routes: list[tuple[tuple[str, ...], str, PathKey, bool]] = []
        for i, entry in enumerate(entries):
            epath = (*at, i)
            if not isinstance(entry, dict) or set(entry) not in (
                {"match", "goto"},
                {"match", "article"},
            ):
                self.err(
                    epath,
                    "a route is {match: [words], goto: step} or {match: [words], article: id}",
                )
                continue
            words = entry["match"]
            if (
                not isinstance(words, list)
                or not words
                or not all(isinstance(w, str) and w.strip() for w in words)
            ):
                self.err((*epath, "match"), "match needs a list of words or phrases")
                continue
            keys = tuple(" ".join(w.lower().replace("ё", "е").split()) for w in words)
            if "article" in entry:  # a step of its own at the program's end (`finish`)
                article, apath = str(entry["article"]), (*epath, "article")
                self.st.pending.articles.append((self.src, apath, article))
                routes.append((keys, article, apath, True))
                continue
            routes.append((keys, str(entry["goto"]), (*epath, "goto"), False))
        pc = self.emit(Route(()), at)
        self.route_fixups.append((pc, routes))

    def end(self, path: PathKey, raw: dict[str, Any]) -> None:
        self.emit(End(), (*path, "end"))

    # -- after the steps --------------------------------------------------------------------

    def finish(self) -> None:
        """Point each goto / on_error / route at its step id."""
        shown: dict[str, int] = {}  # a route's article -> its step (shown, then the flow ends)
        for pc, routes in self.route_fixups:
            resolved = []
            for keys, label, path, is_article in routes:
                if is_article:  # `label` is the article's id
                    if label not in shown:
                        shown[label] = self.emit(ShowArticle(label), path)
                        self.emit(End(), path)
                    resolved.append((keys, shown[label]))
                    continue
                target = self.labels.get(label)
                if target is None:
                    self.err(path, f"unknown step {label!r} in flow {self.flow!r}")
                    continue
                resolved.append((keys, target))
            self.program[pc] = Route(tuple(resolved))
        for pc, label, path in self.fixups:
            target = self.labels.get(label)
            if target is None:
                self.err(path, f"unknown step {label!r} in flow {self.flow!r}")
                target = len(self.program)
            ins = self.program[pc]
            self.program[pc] = (
                Call(ins.action, ins.into, target) if isinstance(ins, Call) else Jump(target)
            )

    def reachability(self) -> None:
        """Report steps nothing leads to (run after every flow is built: buttons elsewhere
        may enter this flow at a step id)."""
        entries = {0} | {
            self.labels[x] for x in self.st.entry_labels.get(self.flow, ()) if x in self.labels
        }
        seen: set[int] = set()
        todo = list(entries)
        size = len(self.program)
        while todo:
            pc = todo.pop()
            if pc in seen or pc >= size:
                continue
            seen.add(pc)
            todo += _successors(self.program[pc], pc)
        reported: set[int] = set()
        for start, path in self.step_starts:
            if start < size and start not in seen and start not in reported:
                reported.add(start)
                self.err(path, f"unreachable step in flow {self.flow!r} (nothing leads here)")


def _successors(ins: Instr, pc: int) -> list[int]:
    """Where the program may go after instruction `pc`."""
    if isinstance(ins, Jump):
        return [ins.target]
    if isinstance(ins, JumpUnless):
        return [pc + 1, ins.target]
    if isinstance(ins, Call):
        return [pc + 1] if ins.on_error is None else [pc + 1, ins.on_error]
    if isinstance(ins, Route):
        return [pc + 1, *(target for _keys, target in ins.routes)]
    if isinstance(ins, End | StartFlow | Handoff):
        return []
    return [pc + 1]


def check_levels(st: Compilation, builders: list[FlowBuilder]) -> None:
    """Every `call:` (and `ticket:`) of an action that needs verification must come after a
    `verify:` step ensuring that level on every path from every way into the flow (its start,
    and steps that buttons or gotos enter directly). `use:` of a flow that verifies on every way
    out counts as that flow's level."""
    by_name = {b.flow: b for b in builders}
    exits: dict[str, int] = {}  # flow -> the level it guarantees when it returns (use:)

    def exit_level(name: str, visiting: frozenset[str]) -> int:
        if name in exits:
            return exits[name]
        builder = by_name.get(name)
        if builder is None or name in visiting:
            return 0
        levels = _flow_levels(builder, lambda f: exit_level(f, visiting | {name}))
        size = len(builder.program)
        ends = [level for pc, level in levels.items() if pc == size]
        exits[name] = min(ends) if ends else 0
        return exits[name]

    for builder in builders:
        own = frozenset({builder.flow})
        levels = _flow_levels(builder, lambda f, own=own: exit_level(f, own))  # type: ignore[misc]
        for pc, ins in enumerate(builder.program):
            need = _needed(st, ins)
            if pc not in levels or LEVELS.index(need) <= levels[pc]:
                continue
            what = f"call: {ins.action}" if isinstance(ins, Call) else "ticket"
            if isinstance(ins, MakeTicket):
                what = f"ticket: {ins.kind}"
            builder.err(
                builder.paths[pc],
                f"`{what}` needs a {need} subscriber: put `verify: {need}` before it "
                "(on every way into this step)",
            )


def _needed(st: Compilation, ins: Instr) -> str:
    if isinstance(ins, Call):
        return st.actions.levels.get(ins.action, "none")
    if isinstance(ins, MakeTicket):
        return st.actions.ticket_levels.get(ins.kind, st.actions.levels.get("ticket", "none"))
    return "none"


def _flow_levels(builder: FlowBuilder, used: Callable[[str], int]) -> dict[int, int]:
    """pc -> the verification level guaranteed on arriving there (index into LEVELS), from the
    flow's entries, each entered with none; len(program) is the way out (falling off the end)."""
    program = builder.program
    entries = {0} | {
        builder.labels[x]
        for x in builder.st.entry_labels.get(builder.flow, ())
        if x in builder.labels
    }
    level: dict[int, int] = {pc: 0 for pc in entries}
    todo = list(entries)
    while todo:
        pc = todo.pop()
        if pc >= len(program):
            continue
        ins, here = program[pc], level[pc]
        after = here
        if isinstance(ins, Verify):
            after = max(here, LEVELS.index(ins.level))
        elif isinstance(ins, UseFlow):
            after = max(here, used(ins.flow))
        for nxt in _successors(ins, pc):
            if nxt not in level or after < level[nxt]:
                level[nxt] = after if nxt not in level else min(level[nxt], after)
                todo.append(nxt)
    return level


# The method that compiles each kind of step; the order is the one problems name kinds in.
STEP_KINDS: dict[str, Callable[[FlowBuilder, PathKey, dict[str, Any]], None]] = {
    "say": FlowBuilder.say,
    "ask": FlowBuilder.ask,
    "call": FlowBuilder.call,
    "if": FlowBuilder.if_,
    "goto": FlowBuilder.goto,
    "flow": FlowBuilder.start_flow,
    "use": FlowBuilder.use,
    "handoff": FlowBuilder.handoff,
    "ticket": FlowBuilder.ticket,
    "set": FlowBuilder.set_,
    "verify": FlowBuilder.verify,
    "route": FlowBuilder.route,
    "end": FlowBuilder.end,
}
assert list(STEP_KINDS) == list(STEP_EXTRAS)
