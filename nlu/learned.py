"""Examples learned from the operator console: one file, `content/nlu/from_console.yml`.

An editor reviews a message the bot got wrong and names its intent; `add_example` appends the text
to that intent in `from_console.yml` (Rasa 3.x YAML, like every other training file), so the hot
reload that follows edits of `content/nlu/` retrains the engine. The editors' own files are never
touched. Guarantees:

- the intent must exist in the current training data (`UnknownIntent`);
- a text already trained (under any intent, in any file) or in the held-out evaluation set is
  refused, naming where it is (`DuplicateExample`, `HeldOutExample`). "Already" compares
  `example_key`s: case, ё/е, punctuation, spacing and the digits of numbers do not count;
- an example is one line: whitespace is collapsed, characters YAML cannot carry are dropped and
  square brackets become round ones (they would read as entity annotations);
- phone and account numbers (personal data) are replaced by a same-shaped dummy and annotated as
  the entity, as content/nlu/README.md asks (`[89000000000](phone)`);
- the file is written to a temporary file, read back with the same loader the engines use, then
  renamed over the old one, under a lock: a reader (the reload watcher, a Rasa export) sees the
  old file or the new one, never half of one, and two writers never lose each other's example.

Blocking (file I/O, YAML); call it from async code through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nlu import entities
from nlu.data import (
    TrainingData,
    TrainingDataError,
    _example_lines,
    load_training_data,
    strip_annotations,
)

FILE_NAME = "from_console.yml"
KINDS = ("intent", "synonym", "regex", "lookup")
MAX_LENGTH = 1000  # characters of one example; longer texts are letters, not ways of asking
HEADER = """\
# Examples added from the operator console ("Обучение NLU"): messages subscribers really wrote,
# each assigned to its intent by an editor. supportbot writes this file (nlu/learned.py): you may
# move or delete lines here like in any training file, but comments in it are not kept.
"""
# What YAML cannot carry even in a block scalar (PyYAML's reader refuses it), plus the BOM.
_NOT_YAML = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN_NAME = re.compile(r"[A-Za-z_][\w\-/]*")
_YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"}
_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"\d+")


class LearnError(ValueError):
    """The example was not added; str() says why in one line."""


class UnknownIntent(LearnError):
    pass


class EmptyExample(LearnError):
    pass


class DuplicateExample(LearnError):
    def __init__(self, message: str, intent: str, source: str) -> None:
        super().__init__(message)
        self.intent = intent
        self.source = source


class HeldOutExample(LearnError):
    pass


class BrokenTrainingData(LearnError):
    """The training files do not load (an editor's edit in progress): nothing can be checked."""


@dataclass(frozen=True, slots=True)
class Added:
    intent: str
    example: str  # the line as written (annotations included)
    text: str  # the example as the engines read it
    file: Path
    fingerprint: str  # of the training data now on disk: the model that will carry the example


# -- texts ---------------------------------------------------------------------------------------


def clean_example(text: str) -> str:
    """The one-line form a subscriber's message takes as an example (no annotation syntax)."""
    text = _NOT_YAML.sub(" ", text)
    text = " ".join(text.split())  # newlines (\n, \r, \x85, \u2028 ...) and tabs become spaces
    if "[" in text or "]" in text:  # `[x](y)`, `[x]{...}`, `[x][...]` are entity annotations
        text = text.replace("[", "(").replace("]", ")")
    return text


def example_key(text: str) -> str:
    """What "the same example" means: case, ё/е, punctuation, spacing and the digits of numbers
    (the engines mask those; they are personal data anyway) do not count."""
    folded = _DIGITS.sub("0", text.casefold().replace("ё", "е"))
    words = _WORD.findall(folded)
    return " ".join(words) if words else " ".join(folded.split())


def anonymise(text: str, regexes: dict[str, list[str]]) -> str:
    """`text` with phone and account numbers replaced by dummies of the same shape, annotated as
    their entity when the training data's `regex:` patterns recognise the dummy too (so the
    annotation is one both engines agree on); an annotation-free line otherwise."""
    out: list[str] = []
    pos = 0
    for ent in entities.extract(text):
        if ent.entity not in ("phone", "account") or ent.start < pos:
            continue
        span = text[ent.start : ent.end]
        dummy = _dummy(span, ent.entity)
        out.append(text[pos : ent.start])
        patterns = regexes.get(ent.entity, [])
        agreed = any(_fullmatch(p, dummy) for p in patterns) and any(
            e.entity == ent.entity and (e.start, e.end) == (0, len(dummy))
            for e in entities.extract(dummy)
        )
        out.append(f"[{dummy}]({ent.entity})" if agreed else dummy)
        pos = ent.end
    out.append(text[pos:])
    return "".join(out)


def _dummy(span: str, entity: str) -> str:
    """Same punctuation and number of digits; digits from a fixed number (+7 900 000-00-00)."""
    count = sum(c.isdigit() for c in span)
    if entity == "phone":
        template = ("8" if span.lstrip("+(").startswith("8") else "7") + "9000000000"
        digits = iter(template[-count:] if count <= len(template) else "0" * count)
    else:
        first = next(c for c in span if c.isdigit())
        digits = iter(first + "0" * (count - 1))
    return "".join(next(digits) if c.isdigit() else c for c in span)


def _fullmatch(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text, re.IGNORECASE) is not None
    except re.error:
        return False


# -- what the training data already holds ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    intent: str
    source: str  # file:line


@dataclass
class _Cache:
    stamp: tuple[tuple[str, float, int], ...] = ()
    data: TrainingData | None = None
    keys: dict[str, Known] = field(default_factory=dict)


_CACHE: dict[Path, _Cache] = {}


def _stamp(folder: Path) -> tuple[tuple[str, float, int], ...]:
    found = []
    for p in sorted(folder.glob("*.y*ml")):
        with contextlib.suppress(OSError):
            st = p.stat()
            found.append((p.name, st.st_mtime, st.st_size))
    return tuple(found)


def training_data(nlu_dir: Path) -> tuple[TrainingData, dict[str, Known]]:
    """The training data in `nlu_dir` and its examples by `example_key` (cached until a file
    changes). BrokenTrainingData when the files do not load."""
    folder = nlu_dir.resolve()
    stamp = _stamp(folder)
    cache = _CACHE.get(folder)
    if cache is not None and cache.stamp == stamp and cache.data is not None:
        return cache.data, cache.keys
    try:
        data = load_training_data([folder])
    except TrainingDataError as exc:
        raise BrokenTrainingData(
            f"the training data has errors, fix them first: {str(exc).splitlines()[0]}"
        ) from exc
    keys: dict[str, Known] = {}
    for ex in data.examples:
        keys.setdefault(example_key(ex.text), Known(ex.intent, _relative(ex.source, folder)))
    _CACHE[folder] = _Cache(stamp, data, keys)
    return data, keys


def known_keys(nlu_dir: Path) -> dict[str, Known]:
    """Every trained example by `example_key` (empty if the data does not load right now)."""
    try:
        return training_data(nlu_dir)[1]
    except BrokenTrainingData:
        return {}


def _held_out(held_out: Path | None) -> dict[str, str]:
    if held_out is None or not held_out.is_dir():
        return {}
    try:
        data = load_training_data([held_out])
    except TrainingDataError:
        return {}
    return {example_key(ex.text): _relative(ex.source, held_out) for ex in data.examples}


def _relative(source: str, folder: Path) -> str:
    """`/abs/content/nlu/billing.yml:12` -> `content/nlu/billing.yml:12`."""
    base = str(folder.parent.parent)
    return source[len(base) + 1 :] if source.startswith(base + os.sep) else source


# -- the file ------------------------------------------------------------------------------------


def read_items(path: Path) -> list[tuple[str, str, list[str]]]:
    """The items of `from_console.yml` as (kind, name, example lines); [] if there is none.
    LearnError if someone gave it a shape this module does not write (it would be lost)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LearnError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BrokenTrainingData(f"{path}: invalid YAML, fix it first") from exc
    if doc is None:
        return []
    items = doc.get("nlu") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(items, list) or set(doc) - {"version", "nlu"}:
        raise LearnError(f"{path}: expected only `version` and an `nlu:` list")
    out: list[tuple[str, str, list[str]]] = []
    for n, item in enumerate(items, 1):
        kind = next((k for k in KINDS if isinstance(item, dict) and k in item), None)
        if (
            kind is None
            or set(item) != {kind, "examples"}
            or not isinstance(item["examples"], str)
            or not isinstance(item[kind], str)
        ):
            raise LearnError(
                f"{path}: item {n} is not `- intent: name` with `examples: |`; the console "
                "writes only that shape, so move the item to another file"
            )
        out.append((kind, item[kind], [line for _, line in _example_lines(item["examples"])]))
    return out


def render(items: list[tuple[str, str, list[str]]]) -> str:
    lines = [HEADER.rstrip("\n"), 'version: "3.1"', "nlu:"]
    for kind, name, examples in items:
        if not examples:
            continue
        lines += [f"- {kind}: {_scalar(name)}", "  examples: |"]
        lines += [f"    - {line}" for line in examples]
    return "\n".join(lines) + "\n"


def _scalar(name: str) -> str:
    plain = _PLAIN_NAME.fullmatch(name) and name.lower() not in _YAML_WORDS
    return name if plain else json.dumps(name, ensure_ascii=False)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself (no lock file among the editors' files)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def add_example(nlu_dir: Path, text: str, intent: str, *, held_out: Path | None = None) -> Added:
    """Append `text` as an example of `intent` to `nlu_dir/from_console.yml` (see the module
    docstring). `held_out` (default: `nlu_dir/../nlu_test`) is the evaluation set no example
    may come from."""
    folder = nlu_dir.resolve()
    target = folder / FILE_NAME
    clean = clean_example(text)
    if not clean:
        raise EmptyExample("the message has no text to learn from")
    if len(clean) > MAX_LENGTH:
        raise LearnError(f"the text is too long for an example ({len(clean)} > {MAX_LENGTH})")
    if held_out is None:
        held_out = folder.parent / "nlu_test"
    with _locked(folder):
        data, keys = training_data(folder)
        if intent not in data.intents:
            raise UnknownIntent(
                f"unknown intent {intent!r}: the training data has {', '.join(data.intents)}"
            )
        line = anonymise(clean, data.regexes)
        plain, _ = strip_annotations(line)
        key = example_key(plain)
        found = keys.get(key)
        if found is not None:
            raise DuplicateExample(
                f"«{plain}» is already an example of intent {found.intent!r} ({found.source})",
                found.intent,
                found.source,
            )
        evaluation = _held_out(held_out).get(key)
        if evaluation is not None:
            raise HeldOutExample(
                f"«{plain}» is in the held-out evaluation set ({evaluation}): it must never "
                "be trained on"
            )
        items = read_items(target)
        for kind, name, examples in items:
            if kind == "intent" and name == intent:
                examples.append(line)
                break
        else:
            items.append(("intent", intent, [line]))
        _write(target, render(items), expect=_expected(items))
        fingerprint = training_data(folder)[0].fingerprint()
    return Added(intent, line, plain, target, fingerprint)


def _expected(items: list[tuple[str, str, list[str]]]) -> list[tuple[str, str]]:
    return [
        (name, strip_annotations(line)[0])
        for kind, name, lines in items
        if kind == "intent"
        for line in lines
    ]


def _write(target: Path, text: str, *, expect: list[tuple[str, str]]) -> None:
    """Temp file, read back with the engines' loader, fsync, rename over `target`."""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644  # like the editors' files (mkstemp makes 0600)
        tmp.chmod(mode)
        try:
            data = load_training_data([tmp])
        except TrainingDataError as exc:  # never expected: render() writes plain block lines
            raise LearnError(f"{target}: the new file would not load: {exc}") from exc
        got = [(ex.intent, ex.text) for ex in data.examples]
        if got != expect or not isinstance(yaml.safe_load(text), dict):
            raise LearnError(f"{target}: the new file would not read back as written")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
