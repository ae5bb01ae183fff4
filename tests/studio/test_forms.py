"""The studio's response form (handoff/console/studio_forms.py): every response of the reference
content that the form can show, written back from its own fields, compiles to the same response
and leaves the rest of its file byte for byte; problems land at the field; Russian messages."""

from __future__ import annotations

from pathlib import Path

from dialogs.content import load_content
from dialogs.content_tree import read_tree, write_tree
from dialogs.yamlsrc import Problem
from handoff.console import studio_forms as forms
from nlu.data import load_training_data
from tests.support import CONTENT, REFERENCE_ACTIONS


def test_every_form_editable_response_round_trips(tmp_path: Path) -> None:
    tree = read_tree(CONTENT)
    rewritten = dict(tree)
    shown = 0
    for item in forms.catalogue(tree)["responses"]:
        file, name = item["file"], item["name"]
        text = rewritten[file].decode()
        try:
            fields = forms.response_fields(text, file, name)
        except forms.FormError:
            continue
        shown += 1
        new = forms.replace_response(text, file, name, fields)
        assert forms.response_fields(new, file, name) == fields
        rewritten[file] = new.encode()
    assert shown >= 30  # most responses are plain enough for the form
    root = tmp_path / "content"
    write_tree(rewritten, root)
    intents = load_training_data([root / "nlu"]).intents
    before = load_content(CONTENT, intents, actions=REFERENCE_ACTIONS)
    after = load_content(root, intents, actions=REFERENCE_ACTIONS)
    assert after.responses == before.responses


def test_a_rewrite_keeps_the_rest_of_the_file() -> None:
    text = (CONTENT / "dialogs" / "service.yml").read_text("utf-8")
    name = next(
        r["name"]
        for r in forms.catalogue(read_tree(CONTENT))["responses"]
        if r["file"] == "dialogs/service.yml"
    )
    fields = forms.response_fields(text, "dialogs/service.yml", name)
    fields["variants"][0]["text"] = "Новый текст\nв две строки"
    new = forms.replace_response(text, "dialogs/service.yml", name, fields)
    removed = set(text.splitlines()) - set(new.splitlines())
    added = set(new.splitlines()) - set(text.splitlines())
    assert any("Новый текст" in line for line in added)
    assert "        в две строки" in new or "      в две строки" in new  # a `|` block
    assert len(removed) <= 3, removed  # only the response's own lines


def test_a_problem_is_placed_at_its_field_and_said_in_russian() -> None:
    text = "responses:\n  hello:\n    - text: Привет, {nobody}!\n      buttons:\n        - - {title: Да, intent: affirm}\n"
    problem = Problem("content/dialogs/x.yml", 3, 15, "unknown slot 'nobody' in template {nobody}")
    assert forms.field_of(text, "content/dialogs/x.yml", "hello", problem) == "v0.text"
    button = Problem("content/dialogs/x.yml", 5, 13, "button title 'Да' is 99 characters; VK")
    assert forms.field_of(text, "content/dialogs/x.yml", "hello", button) == "v0.buttons"
    said = forms.problem_json(problem)
    assert said["message"] == "В шаблоне {nobody} неизвестное поле «nobody»: такого слота нет"
    assert said["where"] == "dialogs/x.yml:3:15"
    syntax = forms.russian("YAML syntax: did not find expected key")
    assert syntax.startswith("Ошибка разметки YAML")


def test_an_intents_examples_round_trip_and_keep_the_rest_of_the_file() -> None:
    text = (CONTENT / "nlu" / "billing.yml").read_text("utf-8")
    examples = forms.intent_examples(text, "nlu/billing.yml", "payment_methods")
    assert "где оплатить" in examples
    assert forms.replace_examples(text, "nlu/billing.yml", "payment_methods", examples) == text
    more = [*examples, "  куда   платить за связь ", ""]
    new = forms.replace_examples(text, "nlu/billing.yml", "payment_methods", more)
    assert set(new.splitlines()) - set(text.splitlines()) == {"    - куда платить за связь"}
    assert forms.intent_examples(new, "nlu/billing.yml", "payment_methods")[-1] == (
        "куда платить за связь"
    )
