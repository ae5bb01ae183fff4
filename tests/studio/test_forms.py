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
    text = (CONTENT / "dialogs" / "bot.yml").read_text("utf-8")
    fields = forms.response_fields(text, "dialogs/bot.yml", "photo")
    fields["variants"][0]["text"] = "Новый текст\nв две строки"
    new = forms.replace_response(text, "dialogs/bot.yml", "photo", fields)
    block = "  photo: |-\n    Новый текст\n    в две строки"  # a `|` block, no final newline
    assert block + "\n  sticker:" in new
    start = text.index("  photo:")
    old_line = text[start : text.index("\n", start)]
    assert new.replace(block, old_line, 1) == text  # every other byte of the file kept


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


def test_every_flow_the_form_shows_round_trips() -> None:
    """Written back from its own steps, each flow (and the rest of its file) reads the same."""
    import yaml

    tree = read_tree(CONTENT)
    shown = 0
    for item in forms.catalogue(tree)["flows"]:
        text = tree[item["file"]].decode()
        try:
            fields = forms.flow_fields(text, item["file"], item["name"])
        except forms.FormError:
            continue
        shown += 1
        new = forms.replace_flow(text, item["file"], item["name"], fields)
        assert yaml.safe_load(new) == yaml.safe_load(text), item["name"]
        assert forms.flow_fields(new, item["file"], item["name"]) == fields
    assert shown >= 25


def test_steps_are_reordered_added_and_removed() -> None:
    text = (CONTENT / "dialogs" / "smalltalk.yml").read_text("utf-8")
    fields = forms.flow_fields(text, "dialogs/smalltalk.yml", "thanks")
    assert [s["kind"] for s in fields["steps"]] == ["say"]
    fields["steps"].insert(
        0, {"kind": "set", "id": "", "fields": [{"key": "set", "value": "x: 1"}]}
    )
    fields["steps"].append({"kind": "end", "id": "", "fields": []})
    new = forms.replace_flow(text, "dialogs/smalltalk.yml", "thanks", fields)
    again = forms.flow_fields(new, "dialogs/smalltalk.yml", "thanks")
    assert [s["kind"] for s in again["steps"]] == ["set", "say", "end"]
    fields["steps"][0]["fields"][0]["value"] = "x: [1"
    try:
        forms.replace_flow(text, "dialogs/smalltalk.yml", "thanks", fields)
    except forms.FormError as exc:
        assert "шаг 1, поле set" in str(exc)
    else:
        raise AssertionError("a broken YAML value was taken")
