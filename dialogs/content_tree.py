"""The content tree as data: every file under a content folder as `{relative path: bytes}`, read
from disk, written back byte for byte, laid out in a folder the loader can read (a version or a
draft is loaded from such a folder), checked by the same validator as `supportbot dialogs
validate`, and compared (the diff an editor sees before publishing and that each version keeps).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dialogs.actions import Actions
from dialogs.content import Content, load_content
from dialogs.yamlsrc import ContentError, Problem
from nlu.data import TrainingDataError, load_training_data

Tree = dict[str, bytes]
MAX_FILE = 2 * 1024 * 1024  # a content file larger than this is refused (a mistake, not content)
SKIPPED = {"__pycache__", ".git", ".DS_Store"}
# The folder name a tree is laid out under, so problems read `content/dialogs/bot.yml:3:5`.
FOLDER = "content"


def read_tree(root: Path) -> Tree:
    """Every regular file under `root` except hidden ones, by path relative to it ('/'-joined)."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED)
        for name in sorted(filenames):
            if name.startswith(".") or name in SKIPPED:
                continue
            path = Path(dirpath) / name
            if not path.is_file():
                continue
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def check_path(path: str) -> str | None:
    """Why `path` cannot be a content file's path (None when it can)."""
    if not path or path.startswith("/") or "\\" in path or len(path) > 255:
        return "путь должен быть относительным, с / между папками"
    parts = path.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return "в пути не может быть пустых частей, . и .. и скрытых файлов"
    return None


def write_tree(tree: Tree, root: Path, *, prune: bool = False) -> list[str]:
    """Write every file of `tree` under `root` byte for byte; with `prune`, delete files under
    `root` the tree does not have. The paths under `root` not in the tree (left or deleted)."""
    for rel, data in tree.items():
        problem = check_path(rel)
        if problem is not None:
            raise ValueError(f"{rel}: {problem}")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    extra = sorted(set(read_tree(root)) - set(tree))
    if prune:
        for rel in extra:
            (root / rel).unlink()
    return extra


def fingerprint(tree: Tree) -> str:
    digest = hashlib.sha256()
    for rel in sorted(tree):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(tree[rel]).digest())
    return digest.hexdigest()[:16]


def materialize(tree: Tree, cache: Path) -> Path:
    """The tree laid out as `cache/<fingerprint>/content` (written once, atomically: a process
    never loads a half-written folder); the path of that content folder."""
    final = cache / fingerprint(tree)
    if not final.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache))
        write_tree(tree, tmp / FOLDER)
        try:
            tmp.rename(final)
        except OSError:  # another process (or task) laid it out first
            shutil.rmtree(tmp, ignore_errors=True)
    return final / FOLDER


def validate(
    root: Path, actions: Actions, groups: Iterable[str] | None
) -> tuple[Content | None, list[Problem]]:
    """What `supportbot dialogs validate` checks, for the content folder `root`: the NLU data
    loads, and the dialogs compile against its intents. (content, warnings) or (None, every
    problem, errors first)."""
    try:
        intents = load_training_data([root / "nlu"]).intents
    except TrainingDataError as exc:
        return None, nlu_problems(str(exc), root)
    try:
        content = load_content(root, intents, actions=actions, groups=groups)
    except ContentError as exc:
        return None, exc.problems
    return content, list(content.warnings)


_NLU_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):\s*(?P<message>.*)$")


def nlu_problems(text: str, root: Path) -> list[Problem]:
    """TrainingDataError's `file:line: message` lines as Problems named like the dialogs'."""
    out = []
    for line in text.splitlines():
        found = _NLU_LINE.match(line.strip())
        if found is None:
            out.append(Problem(f"{FOLDER}/nlu", 1, 1, line.strip()))
            continue
        file = found["file"]
        try:
            file = f"{FOLDER}/" + Path(file).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
        out.append(Problem(file, int(found["line"]), 1, found["message"]))
    return out


def summary(old: Tree, new: Tree) -> dict[str, Any]:
    """What changed from `old` to `new`: paths added, changed, removed, and a unified diff of
    the text files (binary ones are named only)."""
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(p for p in set(old) & set(new) if old[p] != new[p])
    return {
        "added": added,
        "changed": changed,
        "removed": removed,
        "diff": diff_text(old, new),
    }


def diff_text(old: Tree, new: Tree, limit: int = 200_000) -> str:
    chunks: list[str] = []
    for rel in sorted(set(old) | set(new)):
        a, b = old.get(rel), new.get(rel)
        if a == b:
            continue
        a_text, b_text = _text(a), _text(b)
        if a_text is None or b_text is None:
            chunks.append(f"Binary file {rel} {'added' if a is None else 'changed'}\n")
            continue
        chunks += difflib.unified_diff(
            a_text.splitlines(keepends=True),
            b_text.splitlines(keepends=True),
            fromfile=f"a/{rel}" if a is not None else "/dev/null",
            tofile=f"b/{rel}" if b is not None else "/dev/null",
        )
    text = "".join(chunks)
    return text if len(text) <= limit else text[:limit] + "\n... (diff cut)\n"


def _text(data: bytes | None) -> str | None:
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
