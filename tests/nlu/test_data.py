"""Training data in Rasa's format: loaded with entities; broken files name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.data import TrainingDataError, load_training_data, strip_annotations

GOOD = """version: "3.1"
nlu:
- intent: balance
  examples: |
    - сколько денег на счету
    - баланс на [8 916 123-45-67](phone)
- intent: greet
  examples: |
    - привет
- synonym: интернет
  examples: |
    - инет
- regex: phone
  examples: |
    - \\+7\\d{10}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_examples_entities_synonyms_and_regexes_are_read(tmp_path: Path) -> None:
    data = load_training_data([write(tmp_path, "a.yml", GOOD)])
    assert data.intents == ["balance", "greet"]
    annotated = data.examples[1]
    assert annotated.text == "баланс на 8 916 123-45-67"
    [(name, start, end)] = annotated.entities
    assert name == "phone" and annotated.text[start:end] == "8 916 123-45-67"
    assert annotated.source.endswith("a.yml:6")
    assert data.synonyms == {"инет": "интернет"}
    assert data.regexes == {"phone": ["\\+7\\d{10}"]}


def test_fingerprint_follows_the_content(tmp_path: Path) -> None:
    first = load_training_data([write(tmp_path, "a.yml", GOOD)]).fingerprint()
    assert load_training_data([tmp_path / "a.yml"]).fingerprint() == first
    changed = load_training_data([write(tmp_path, "a.yml", GOOD.replace("привет", "здрасте"))])
    assert changed.fingerprint() != first


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            GOOD.replace("  examples: |\n    - привет", "  examples: |\n    - привет\n  - oops: ["),
            10,
            "invalid YAML",
        ),
        (GOOD.replace('version: "3.1"\n', ""), 1, "version"),
        (
            GOOD.replace("- intent: greet\n  examples: |\n    - привет\n", "- intent: greet\n"),
            7,
            "needs `examples",
        ),
        (GOOD.replace("\\+7\\d{10}", "(unclosed"), 15, "does not compile"),
        (GOOD.replace("- synonym: интернет", "- synonym: интернет\n  regex: x"), 10, "exactly one"),
    ],
)
def test_broken_files_name_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, "broken.yml", text)
    with pytest.raises(TrainingDataError) as err:
        load_training_data([path])
    assert f"{path}:{line}" in str(err.value)
    assert message in str(err.value)


def test_annotation_forms() -> None:
    text, ents = strip_annotations('лс [123456789]{"entity": "account"} и [89161234567](phone)')
    assert text == "лс 123456789 и 89161234567"
    assert [(n, text[s:e]) for n, s, e in ents] == [
        ("account", "123456789"),
        ("phone", "89161234567"),
    ]


# Overlaps the held-out file had from the start (it is fixed, and "привет" stays a greeting in
# training): "привет ✌️" is "привет" and "999" is "123" once emoji and digits stop counting.
KNOWN_OVERLAPS = {"привет", "0"}


def test_reference_data_never_trains_on_a_held_out_text() -> None:
    """content/nlu_test/heldout.yml measures messages never seen: none of its texts (compared as
    `example_key`: case, ё/е, punctuation, spacing and digits do not count) may be trained on."""
    from nlu.learned import example_key
    from tests.support import CONTENT

    training = load_training_data([CONTENT / "nlu"]).examples
    held_out = {
        example_key(e.text): e.source
        for e in load_training_data([CONTENT / "nlu_test"]).examples
        if example_key(e.text) not in KNOWN_OVERLAPS
    }
    leaked = [(e.source, held_out[k]) for e in training if (k := example_key(e.text)) in held_out]
    assert not leaked


def test_reference_data_has_no_text_under_two_intents() -> None:
    from nlu.learned import example_key
    from tests.support import CONTENT

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for e in load_training_data([CONTENT / "nlu"]).examples:
        key = example_key(e.text)
        if key in seen and seen[key][0] != e.intent:
            clashes.append((e.source, e.intent, seen[key]))
        seen.setdefault(key, (e.intent, e.source))
    assert not clashes
