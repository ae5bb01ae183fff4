"""Knowledge-base articles as an editor meets them: the shipped ones load, each typical mistake in
a `content/knowledge/*.md` file is reported on its line by name, an edit goes live by hot reload,
and `kb add-question` turns a subscriber's question into an article's alternative question."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dialogs.content import load_content
from dialogs.content.knowledge import add_question
from dialogs.knowledge import ANSWER_AT
from dialogs.reload import ReloadingContent
from dialogs.yamlsrc import ContentError, Problem
from tests.dialogs.test_validate import GROUPS, INTENTS, copy_content
from tests.support import CONTENT, REFERENCE_ACTIONS

ARTICLE = """---
title: Тестовая статья про голубиную почту
questions:
  - можно ли отправить письмо голубем
  - голубиная почта работает
short: Да, голубиная почта работает по будням 🕊
buttons:
  - {title: "📍 Офисы", intent: offices}
---
Голубь вылетает из салона в 9:00. Письмо до 20 граммов, конверт бесплатно.
"""


def with_articles(tmp_path: Path) -> Path:
    """A content folder whose knowledge/ is our own copy (the rest as shipped)."""
    root = copy_content(tmp_path)
    (root / "knowledge").unlink()
    shutil.copytree(CONTENT / "knowledge", root / "knowledge")
    return root


def load(root: Path):  # type: ignore[no-untyped-def]
    return load_content(root, INTENTS, actions=REFERENCE_ACTIONS, groups=GROUPS)


def problems_of(root: Path) -> list[Problem]:
    with pytest.raises(ContentError) as caught:
        load(root)
    return caught.value.problems


def test_the_shipped_knowledge_base_loads_and_every_article_is_complete() -> None:
    content = load(CONTENT)
    assert len(content.articles) >= 60
    for article in content.articles.values():
        assert article.title and article.text.short and len(article.text.body) > 200, article.id
        assert len(article.questions) >= 5, article.id
    # Each article's own title finds that article, confidently.
    for article in content.articles.values():
        hits = content.knowledge.search(article.title)
        assert hits and hits[0].id == article.id and hits[0].score >= ANSWER_AT, article.id


@pytest.mark.parametrize(
    ("old", "new", "marker", "names"),
    [
        ("title: Тестовая статья про голубиную почту\n", "", "questions:", ("title", "required")),
        ("short: Да", "shrt: Да", "shrt:", ("unknown key", "shrt")),
        ("intent: offices", "intent: pigeons", "intent: pigeons", ("pigeons",)),
        ("  - голубиная почта работает\n", "  - {a: b}\n", "questions:", ("questions",)),
        ("short: Да,", "short: " + "Очень " * 130 + "да,", "short:", ("short is",)),
    ],
    ids=["no title", "misspelt key", "button to no intent", "not a text", "short too long"],
)
def test_a_mistake_in_an_article_is_reported_on_its_line(
    tmp_path: Path, old: str, new: str, marker: str, names: tuple[str, ...]
) -> None:
    root = with_articles(tmp_path)
    text = ARTICLE.replace(old, new)
    assert text != ARTICLE
    (root / "knowledge" / "pigeon_post.md").write_text(text, "utf-8")
    line = text[: text.index(marker)].count("\n") + 1
    problems = problems_of(root)
    hits = [
        p
        for p in problems
        if p.file.endswith("knowledge/pigeon_post.md")
        and p.line == line
        and all(n in p.message for n in names)
    ]
    assert hits, "\n".join(str(p) for p in problems)


def test_a_file_that_is_not_an_article_is_refused_with_the_reason(tmp_path: Path) -> None:
    root = with_articles(tmp_path)
    (root / "knowledge" / "notes.md").write_text("просто заметки без шапки\n", "utf-8")
    (root / "knowledge" / "Bad Name.md").write_text(ARTICLE, "utf-8")
    messages = [str(p) for p in problems_of(root)]
    assert any("notes.md:1:1" in m and "front matter" in m for m in messages), messages
    assert any("Bad Name.md" in m and "file name" in m for m in messages), messages


async def test_a_new_article_goes_live_by_hot_reload_and_a_broken_one_is_refused(
    tmp_path: Path,
) -> None:
    root = with_articles(tmp_path)
    live = ReloadingContent(root, lambda: INTENTS, actions=REFERENCE_ACTIONS, groups=GROUPS)
    assert "pigeon_post" not in live.current.articles
    path = root / "knowledge" / "pigeon_post.md"
    path.write_text(ARTICLE, "utf-8")
    assert await live.reload()
    hits = live.current.knowledge.search("а голубиная почта у вас работает?")
    assert hits[0].id == "pigeon_post" and hits[0].score >= ANSWER_AT
    path.write_text(ARTICLE.replace("short: Да", "shortt: Да"), "utf-8")
    assert not await live.reload()
    assert live.last_error is not None and "pigeon_post.md:6:1" in live.last_error
    assert "pigeon_post" in live.current.articles  # the last good version stays live


def test_add_question_keeps_the_file_and_the_new_question_finds_the_article(
    tmp_path: Path,
) -> None:
    root = with_articles(tmp_path)
    path = root / "knowledge" / "pigeon_post.md"
    path.write_text(ARTICLE, "utf-8")
    asked = "птичкой письмо послать реально?"
    before = load(root)
    assert not before.knowledge.search(asked) or before.knowledge.search(asked)[0].score < 0.9
    assert add_question(root, before.articles["pigeon_post"], asked) is True
    text = path.read_text("utf-8")
    assert text.startswith(ARTICLE.split("short:")[0].rstrip("\n"))  # nothing else moved
    assert '  - "птичкой письмо послать реально?"\nshort:' in text
    after = load(root)
    assert asked in after.articles["pigeon_post"].questions
    assert after.knowledge.search(asked)[0].id == "pigeon_post"
    # The same question again (other case, spaces) is not added twice.
    again = " Птичкой  письмо послать реально? "
    assert add_question(root, after.articles["pigeon_post"], again) is False
    assert path.read_text("utf-8").lower().count("птичкой") == 1
