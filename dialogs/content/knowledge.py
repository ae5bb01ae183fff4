"""Knowledge-base articles: `content/knowledge/<id>.md`, a YAML front matter and a plain-text
body, checked like the rest of the content and indexed for retrieval (nlu/knowledge.py).

    ---
    title: Перенос остатков минут и гигабайт
    questions: [можно перенести гигабайты на следующий месяц, сгорают ли минуты]
    short: Да, остатки переносятся на следующий месяц 🙂
    buttons: [{title: "📱 Приложение", url: "https://lk.example-telecom.ru"}]
    keywords: [остатки, сгорают]
    channels: {vk: {short: ..., body: ...}}
    ---
    The whole article (shown on «Подробнее»).

Every problem is reported as `file:line:col: message`, like a dialog file's.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from dialogs.content import limits
from dialogs.content.actions import ActionTable
from dialogs.content.model import CHANNELS, KB_PAYLOAD, Article, ArticleText
from dialogs.content.responses import _buttons
from dialogs.content.state import Compilation, Pending, display_name
from dialogs.limits import LIMITS, TELEGRAM
from dialogs.yamlsrc import ContentError, Problem, Source, parse
from nlu.data import TrainingDataError, load_training_data
from nlu.knowledge import Doc, KnowledgeIndex, build_index

KNOWLEDGE_DIR = "knowledge"
KEYS = {"title", "questions", "short", "buttons", "keywords", "channels"}
MAX_SHORT = 700  # the chat answer: a few sentences, the rest is behind «Подробнее»
MAX_TITLE = 60
NOT_REQUESTS = {"out_of_scope"}  # NLU examples that are not an intent's kind of request
_ID = re.compile(r"^[a-z0-9_]+$")
# The longest article id whose payloads (kb:more:<id>) fit Telegram's callback data.
MAX_ID = TELEGRAM.payload_bytes - len(KB_PAYLOAD + "more:")


def knowledge_files(content_dir: Path) -> list[Path]:
    return sorted((content_dir / KNOWLEDGE_DIR).glob("*.md"))


def compile_articles(st: Compilation, content_dir: Path) -> dict[str, Article]:
    """Every article under `content_dir/knowledge/`, problems noted in `st`."""
    out: dict[str, Article] = {}
    for path in knowledge_files(content_dir):
        display = display_name(path, content_dir)
        try:
            article = _article(st, path, display)
        except ContentError as exc:
            st.problems += exc.problems
            continue
        if article is not None:
            out[article.id] = article
    return out


def index(articles: dict[str, Article], content_dir: Path) -> KnowledgeIndex:
    """The articles indexed for retrieval, with the NLU's training examples (`content/nlu`) as
    the intents' kind of request (KnowledgeIndex.long_tail)."""
    return build_index(
        tuple(
            Doc(a.id, a.title, a.questions, a.keywords, a.text.body)
            for a in sorted(articles.values(), key=lambda a: a.id)
        ),
        _requests(content_dir / "nlu"),
    )


def _requests(nlu_dir: Path) -> tuple[str, ...]:
    """The NLU's request examples, read again only when its files change (a reload of the
    dialogs must not parse 1,500 examples each time)."""
    if not nlu_dir.is_dir():
        return ()
    files = sorted([*nlu_dir.glob("*.yml"), *nlu_dir.glob("*.yaml")])
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _requests_of(nlu_dir, stamp)


@functools.lru_cache(maxsize=4)
def _requests_of(nlu_dir: Path, _stamp: tuple[tuple[str, int, int], ...]) -> tuple[str, ...]:
    try:
        examples = load_training_data([nlu_dir]).examples
    except TrainingDataError:  # reported by the NLU's own loading; the index works without
        return ()
    return tuple(e.text for e in examples if e.intent not in NOT_REQUESTS)


def _article(st: Compilation, path: Path, display: str) -> Article | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        st.err(Source(display, None), (), f"cannot read: {exc}")
        return None
    head = Source(display, None)
    if not _ID.match(path.stem) or len(path.stem) > MAX_ID:
        st.err(head, (), f"article file name {path.stem!r}: use a-z, 0-9 and _, at most {MAX_ID}")
        return None
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---" or "---" not in [x.strip() for x in lines[1:]]:
        st.err(head, (), "an article starts with a front matter between two `---` lines")
        return None
    end = 1 + [x.strip() for x in lines[1:]].index("---")
    src = parse("\n".join(lines[1:end]), display, first_line=2)
    body = "\n".join(lines[end + 1 :]).strip()
    data = src.data
    if not isinstance(data, dict):
        st.err(src, (), "the front matter must be a mapping (title, questions, short, ...)")
        return None
    for key in sorted(set(data) - KEYS):
        st.err(src, (key,), f"unknown key {key!r}; an article has {', '.join(sorted(KEYS))}")
    title = _string(st, src, data, "title")
    short = _string(st, src, data, "short")
    questions = _strings(st, src, data, "questions", required=True)
    keywords = _strings(st, src, data, "keywords", required=False)
    if not body:
        st.err(src, (), "the article has no body after the front matter")
    if title is None or short is None or questions is None:
        return None
    if len(title) > MAX_TITLE:
        st.err(src, ("title",), f"title is {len(title)} characters; at most {MAX_TITLE}")
    main = ArticleText(short.strip(), body)
    _check_text(st, src, ("short",), main)
    channels = _channels(st, src, data.get("channels"), main)
    buttons = _buttons(st, src, ("buttons",), data.get("buttons"), None)
    for channel in CHANNELS:
        limits.check_buttons(st, src, (), buttons, channel)
    return Article(
        id=path.stem,
        title=title.strip(),
        questions=tuple(q.strip() for q in questions),
        text=main,
        buttons=buttons,
        keywords=tuple(k.strip() for k in keywords or ()),
        channels=channels,
        file=display,
    )


def _string(st: Compilation, src: Source, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        st.err(src, (key,) if key in data else (), f"`{key}` is required: a non-empty text")
        return None
    return value


def _strings(
    st: Compilation, src: Source, data: dict[str, Any], key: str, *, required: bool
) -> list[str] | None:
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or not all(_text_like(v) for v in value):
        st.err(src, (key,) if key in data else (), f"`{key}` must be a list of texts")
        return None
    return [str(v) for v in value]  # `810` or `8.800` written bare are texts too


def _text_like(value: Any) -> bool:
    return (
        isinstance(value, str | int | float)
        and not isinstance(value, bool)
        and bool(str(value).strip())
    )


def _check_text(st: Compilation, src: Source, path: tuple[str, ...], text: ArticleText) -> None:
    if len(text.short) > MAX_SHORT:
        st.err(src, path, f"short is {len(text.short)} characters; at most {MAX_SHORT}")
    longest = min(limit.text for limit in LIMITS.values())
    if len(text.body) > longest:
        st.err(src, (), f"the body is {len(text.body)} characters; one message holds {longest}")


def _channels(
    st: Compilation, src: Source, raw: Any, main: ArticleText
) -> tuple[tuple[str, ArticleText], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        st.err(src, ("channels",), "channels: a mapping of channel -> {short, body}")
        return ()
    out = []
    for channel, override in raw.items():
        path = ("channels", channel)
        if channel not in CHANNELS:
            st.err(src, path, f"unknown channel {channel!r}; use {' or '.join(CHANNELS)}")
            continue
        if not isinstance(override, dict) or set(override) - {"short", "body"}:
            st.err(src, path, "a channel override has `short` and/or `body`")
            continue
        text = ArticleText(
            str(override.get("short", main.short)).strip(),
            str(override.get("body", main.body)).strip(),
        )
        _check_text(st, src, (*path, "short"), text)
        out.append((str(channel), text))
    return tuple(out)


def add_question(content_dir: Path, article: Article, question: str) -> bool:
    """Append `question` to the article's alternative questions in its file (formatting and
    comments kept); False if it is there already. The file must still load afterwards, else it
    is left as it was and ContentError says why."""
    question = " ".join(question.split())
    if not question:
        raise ContentError([Problem(article.file, 1, 1, "an empty question")])
    if question.lower() in {q.lower() for q in article.questions}:
        return False
    path = content_dir / KNOWLEDGE_DIR / f"{article.id}.md"
    original = path.read_text(encoding="utf-8")
    lines = original.split("\n")
    key = next((i for i, x in enumerate(lines) if x.startswith("questions:")), None)
    if key is None or lines[key].strip() != "questions:":
        raise ContentError(
            [Problem(article.file, (key or 0) + 1, 1, "`questions:` is not a block list")]
        )
    last = key
    for i in range(key + 1, len(lines)):
        if lines[i].startswith((" ", "\t")) or not lines[i].strip():
            if lines[i].strip():
                last = i
            continue
        break
    indent = lines[last][: len(lines[last]) - len(lines[last].lstrip())] if last > key else "  "
    lines.insert(last + 1, f"{indent}- {json.dumps(question, ensure_ascii=False)}")
    path.write_text("\n".join(lines), encoding="utf-8")
    st = Compilation(content_dir, set(), None, ActionTable({}, {}, {}, {}, {}, {}))
    st.pending = Pending()  # button targets are not this edit's business
    loaded = _article(st, path, article.file)
    if loaded is None or question not in loaded.questions or st.problems:
        path.write_text(original, encoding="utf-8")
        raise ContentError(st.problems or [Problem(article.file, 1, 1, "the edit did not load")])
    return True
