"""`export_project` / `data_hash` on the fixture content in tests/rasa/data (and the CLI)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import yaml

from nlu.rasa_project import (
    RasaProjectError,
    data_hash,
    export_project,
    project_hash,
)
from supportbot.cli_rasa import add_rasa_commands
from supportbot.settings import ConfigError, load_settings
from tests.support import CONTRACT_INTENTS

DATA = Path(__file__).resolve().parent / "data"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def content(tmp_path: Path) -> Path:
    copy = tmp_path / "content"
    shutil.copytree(DATA, copy)
    return copy


def test_export_writes_a_complete_project(content: Path, tmp_path: Path) -> None:
    out = export_project(content, tmp_path / "project")
    assert sorted(_files(out)) == [
        "config.yml",
        "credentials.yml",
        "data/telecom.yml",
        "domain.yml",
        "endpoints.yml",
    ]
    config = yaml.safe_load((out / "config.yml").read_text(encoding="utf-8"))
    assert config["language"] == "ru" and config["assistant_id"]
    assert config["recipe"] == "default.v1" and config["policies"] == []
    names = [c["name"] for c in config["pipeline"]]
    assert names == [
        "WhitespaceTokenizer",
        "RegexFeaturizer",
        "LexicalSyntacticFeaturizer",
        "CountVectorsFeaturizer",
        "CountVectorsFeaturizer",
        "DIETClassifier",
        "EntitySynonymMapper",
        "RegexEntityExtractor",
        "FallbackClassifier",
    ]
    by_name = {c["name"]: c for c in config["pipeline"]}
    assert config["pipeline"][4] == {
        "name": "CountVectorsFeaturizer",
        "analyzer": "char_wb",
        "min_ngram": 1,
        "max_ngram": 4,
    }
    assert by_name["DIETClassifier"]["constrain_similarities"] is True
    assert by_name["FallbackClassifier"]["threshold"] == 0.4
    assert by_name["FallbackClassifier"]["ambiguity_threshold"] == 0.1
    assert by_name["RegexEntityExtractor"]["use_regexes"] is True
    assert by_name["RegexEntityExtractor"]["use_lookup_tables"] is True

    domain = yaml.safe_load((out / "domain.yml").read_text(encoding="utf-8"))
    assert domain["version"] == "3.1"
    assert set(domain["intents"]) == CONTRACT_INTENTS  # every intent, none from held-out
    assert domain["entities"] == ["account", "phone"]
    assert "session_config" in domain
    # training data copied verbatim
    assert (out / "data" / "telecom.yml").read_bytes() == (
        content / "nlu" / "telecom.yml"
    ).read_bytes()
    for name in ("endpoints.yml", "credentials.yml"):
        assert yaml.safe_load((out / name).read_text(encoding="utf-8")) is None  # comments only


def test_heldout_is_never_exported(content: Path, tmp_path: Path) -> None:
    out = export_project(content, tmp_path / "project")
    everything = b"".join(_files(out).values())
    assert b"heldout_only_intent" not in everything
    assert not any("heldout" in name for name in _files(out))


def test_deterministic(content: Path, tmp_path: Path) -> None:
    a = export_project(content, tmp_path / "a")
    b = export_project(content, tmp_path / "b")
    assert _files(a) == _files(b)
    assert data_hash(content) == data_hash(content) == project_hash(a) == project_hash(b)
    export_project(content, a)  # re-export in place: unchanged
    assert _files(a) == _files(b)


def test_hash_follows_training_data_only(content: Path, tmp_path: Path) -> None:
    before = data_hash(content)
    (content / "nlu_test" / "heldout.yml").write_text("nlu: []\n", encoding="utf-8")
    assert data_hash(content) == before  # the held-out set does not affect the model
    extra = content / "nlu" / "more.yml"
    extra.write_text(
        'version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - салют\n',
        encoding="utf-8",
    )
    changed = data_hash(content)
    assert changed != before
    out = export_project(content, tmp_path / "p")
    assert project_hash(out) == changed
    extra.unlink()
    export_project(content, out)  # a removed training file disappears from the export
    assert not (out / "data" / "more.yml").exists()
    assert project_hash(out) == before


def test_new_intent_and_entity_reach_the_domain(content: Path, tmp_path: Path) -> None:
    (content / "nlu" / "extra.yml").write_text(
        'version: "3.1"\nnlu:\n  - intent: faq/ask_wifi\n    examples: |\n'
        "      - пароль от [роутера](device)\n",
        encoding="utf-8",
    )
    domain = yaml.safe_load((export_project(content, tmp_path / "p") / "domain.yml").read_text())
    assert "faq" in domain["intents"]
    assert domain["entities"] == ["account", "device", "phone"]


def test_errors_name_the_file(content: Path, tmp_path: Path) -> None:
    bad = content / "nlu" / "bad.yml"
    bad.write_text("nlu:\n  - intent: greet\n    examples: |\n  - oops: [\n", encoding="utf-8")
    with pytest.raises(RasaProjectError, match=r"bad\.yml line \d+: invalid YAML"):
        export_project(content, tmp_path / "p")
    with pytest.raises(RasaProjectError, match="no such directory"):
        data_hash(tmp_path / "nothing")


def test_unannotated_regex_is_warned_about(
    content: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = (content / "nlu" / "telecom.yml").read_text(encoding="utf-8")
    (content / "nlu" / "telecom.yml").write_text(
        text.replace("[+7 912 345-67-89](phone)", "+7 912 345-67-89").replace(
            "[89123456789](phone)", "89123456789"
        ),
        encoding="utf-8",
    )
    export_project(content, tmp_path / "p")
    assert "regex/lookup 'phone' has no annotated example" in caplog.text


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="supportbot")
    add_rasa_commands(parser.add_subparsers())
    return parser.parse_args(argv)


async def test_cli_export(
    content: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _cli(["rasa", "export", str(tmp_path / "out"), "--content", str(content)])
    assert await args.func(load_settings(), args) == 0
    assert (tmp_path / "out" / "domain.yml").exists()
    assert "rasa/rasa:3.6.21-full train nlu" in capsys.readouterr().out

    args = _cli(["rasa", "export", str(tmp_path / "out2"), "--content", str(tmp_path / "none")])
    with pytest.raises(ConfigError, match="no such directory"):
        await args.func(load_settings(), args)


def test_cli_serve_arguments() -> None:
    args = _cli(["rasa", "serve", "--port", "5999", "--token", "t", "--home", "/tmp/h"])
    assert (args.port, args.token, args.home, args.content) == (5999, "t", Path("/tmp/h"), None)
    assert args.func.__name__ == "_serve"
