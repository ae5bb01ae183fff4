"""Content validation as an editor meets it: the shipped dialogs pass, and each typical mistake in
a `content/dialogs/*.yml` file is reported in the right file, on the right line, by name."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from dialogs.content import load_content
from dialogs.yamlsrc import ContentError, Problem
from nlu.data import load_training_data
from supportbot.cli import main
from supportbot.settings import Settings
from tests.support import CONTENT, REFERENCE_ACTIONS

INTENTS = frozenset(load_training_data([CONTENT / "nlu"]).intents)
GROUPS = tuple(Settings.model_fields["skill_groups"].default)

LONG_ID = "step_with_a_very_long_name_that_does_not_fit_telegram_callback"
LONG_TITLE = "📍 Где наши салоны связи в Пушкине и рядом с ним"  # 47 characters
LONG_TEXT = "Начало длинного ответа. " + "Очень длинный текст про тарифы и услуги. " * 110
SEVEN_ROWS = "".join(
    f'                - {{title: "Кнопка {i}", intent: offices}}\n' for i in range(7)
)
NUMBER_PORTING_BUTTONS = (
    '          buttons:\n            - {title: "📍 Где салоны", intent: offices}\n\n  roaming:\n'
)


@dataclass(frozen=True)
class Mistake:
    """Replace `old` (found exactly once) by `new` in `file`; the problem belongs on the line
    holding `marker` (in the edited text) and its message must contain every one of `names`."""

    file: str
    old: str
    new: str
    marker: str
    names: tuple[str, ...]


def copy_content(tmp_path: Path) -> Path:
    """A content folder like the shipped one: our own copy of the dialogs to edit, the rest
    (NLU data, images) linked."""
    root = tmp_path / "content"
    (root / "dialogs").mkdir(parents=True)
    for path in (CONTENT / "dialogs").glob("*.yml"):
        shutil.copy(path, root / "dialogs" / path.name)
    for path in CONTENT.iterdir():
        if path.name != "dialogs":
            (root / path.name).symlink_to(path, target_is_directory=path.is_dir())
    return root


def edit(root: Path, file: str, old: str, new: str) -> str:
    path = root / "dialogs" / file
    text = path.read_text("utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {file}"
    text = text.replace(old, new)
    path.write_text(text, "utf-8")
    return text


def line_of(text: str, marker: str) -> int:
    assert text.count(marker) == 1, f"marker {marker!r} must occur exactly once"
    return text[: text.index(marker)].count("\n") + 1


def introduce(root: Path, mistake: Mistake) -> int:
    """Make the edit; return the line where the problem must be reported."""
    return line_of(edit(root, mistake.file, mistake.old, mistake.new), mistake.marker)


def problems_of(root: Path) -> list[Problem]:
    with pytest.raises(ContentError) as caught:
        load_content(root, INTENTS, actions=REFERENCE_ACTIONS, groups=GROUPS)
    return caught.value.problems


def assert_reported(problems: list[Problem], file: str, line: int, names: tuple[str, ...]) -> None:
    hits = [
        p
        for p in problems
        if p.file.endswith(f"dialogs/{file}")
        and p.line == line
        and not p.warning
        and all(n in p.message for n in names)
    ]
    listing = "\n".join(str(p) for p in problems)
    assert hits, f"no error at {file}:{line} naming {names}; reported:\n{listing}"


# --------------------------------------------------------------------------- shipped content


def test_shipped_content_is_valid_without_warnings() -> None:
    content = load_content(CONTENT, INTENTS, actions=REFERENCE_ACTIONS)
    assert content.warnings == ()
    assert set(content.intent_flows) == INTENTS  # every NLU intent has its flow
    with_groups = load_content(CONTENT, INTENTS, actions=REFERENCE_ACTIONS, groups=GROUPS)
    assert with_groups.warnings == ()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI reads SUPPORTBOT_* settings: make sure the developer's own do not leak in."""
    for key in list(os.environ):
        if key.startswith("SUPPORTBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def run_validate(content_dir: Path) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["dialogs", "validate", "--content", str(content_dir)])
    code = exited.value.code
    assert isinstance(code, int)
    return code


@pytest.mark.usefixtures("clean_env")
def test_cli_validates_the_shipped_content(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate(CONTENT) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: ") and f"every intent of {len(INTENTS)} has a flow" in out
    assert err == ""


# --------------------------------------------------------------------------- one mistake each

MISTAKES = [
    pytest.param(
        Mistake(
            "omni.yml",
            'commands: ["/unlink", "отвязать аккаунт",',
            'commands: ["/unlink", "Связать!",',
            '"Связать!"',
            ("command", "Связать!", "link_accounts"),
        ),
        id="command-taken-by-another-flow",
    ),
    pytest.param(
        Mistake(
            "omni.yml",
            'commands: ["/unlink", "отвязать аккаунт", "отвязать", "отвязать аккаунты"]',
            'commands: "/unlink"',
            'commands: "/unlink"',
            ("commands", "list"),
        ),
        id="commands-not-a-list",
    ),
    pytest.param(
        Mistake(
            "smalltalk.yml",
            '    intent: deny\n    title: "👎 Нет"\n',
            '    intent: deny\n     title: "👎 Нет"\n',
            'title: "👎 Нет"',
            ("YAML syntax",),
        ),
        id="yaml-bad-indentation",
    ),
    pytest.param(
        Mistake(
            "bot.yml",
            "    buttons: *menu\n  fallback:",
            "    buttons: *meny\n  fallback:",
            "*meny",
            ("YAML syntax", "meny"),
        ),
        id="yaml-unknown-alias",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            "reason: asked for a human",
            'reason: "asked for a human',
            '"asked for a human',
            ("YAML syntax",),
        ),
        id="yaml-unclosed-quote",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            'url: "https://yandex.ru/maps/?text=салон%20связи%20Пушкин"}',
            'url: "https://yandex.ru/maps/?text=салон%20связи%20Пушкин"',
            "Открыть на карте",
            ("YAML syntax",),
        ),
        id="yaml-unclosed-brace",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            "    intent: roaming\n",
            "    intent: no_such_intent\n",
            "no_such_intent",
            ("unknown intent", "no_such_intent"),
        ),
        id="flow-unknown-intent",
    ),
    pytest.param(
        Mistake(
            "bot.yml",
            '{title: "📍 Офисы", intent: offices}',
            '{title: "📍 Офисы", intent: no_such_intent}',
            "no_such_intent",
            ("unknown intent", "no_such_intent"),
        ),
        id="button-unknown-intent-in-yaml-anchor",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "      - end\n      - id: card\n",
            "      - goto: no_such_step\n      - id: card\n",
            "goto: no_such_step",
            ("unknown step", "no_such_step", "payment_methods"),
        ),
        id="step-goto-unknown-step",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            '{title: "📍 Где терминалы", intent: offices}\n'
            '            - {title: "⬅️ Другие способы", goto: ways}',
            '{title: "📍 Где терминалы", intent: offices}\n'
            '            - {title: "⬅️ Другие способы", goto: no_such_step}',
            "goto: no_such_step",
            ("unknown step", "no_such_step"),
        ),
        id="button-goto-unknown-step",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            '{title: "📵 Телефон не видит SIM", article: sim_not_detected}',
            '{title: "📵 Телефон не видит SIM", article: sim_not_seen}',
            "article: sim_not_seen",
            ("unknown article", "sim_not_seen"),
        ),
        id="button-article-unknown",
    ),
    pytest.param(
        Mistake(
            "tech.yml",
            "article: slow_home_internet}",
            "article: slow_internet}",
            "article: slow_internet",
            ("unknown article", "slow_internet"),
        ),
        id="route-article-unknown",
    ),
    pytest.param(
        Mistake(
            "tech.yml",
            '      - set: {problem: "не работает телевидение"}\n      - use: outage_check\n',
            '      - set: {problem: "не работает телевидение"}\n      - use: no_such_flow\n',
            "no_such_flow",
            ("unknown flow", "no_such_flow"),
        ),
        id="use-unknown-flow",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "      - verify: verified\n      - call: balance\n",
            "      - call: balance\n",
            "call: balance",
            ("`call: balance` needs a verified subscriber", "verify: verified"),
        ),
        id="personal-data-without-verification",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            "      - verify: fresh\n",
            "      - verify: verified\n",
            "ticket: block_number",
            ("`ticket: block_number` needs a fresh subscriber", "verify: fresh"),
        ),
        id="blocking-without-step-up",
    ),
    pytest.param(
        Mistake(
            "tariffs.yml",
            "      - verify: fresh\n      - call: tariff_change\n",
            "      - call: tariff_change\n",
            "call: tariff_change",
            ("`call: tariff_change` needs a fresh subscriber",),
        ),
        id="tariff-change-without-step-up",
    ),
    pytest.param(
        Mistake(
            "smalltalk.yml",
            "say: menu",
            "say: no_such_response",
            "no_such_response",
            ("unknown response", "no_such_response"),
        ),
        id="say-unknown-response",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            "ask: complaint_text",
            "ask: no_such_slot",
            "no_such_slot",
            ("unknown slot", "no_such_slot"),
        ),
        id="ask-unknown-slot",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            'say: "Обещанный платёж действует до {balance.promised_payment_until|date} ⏳"',
            'say: "Обещанный платёж действует до {no_such_slot} ⏳"',
            "{no_such_slot}",
            ("unknown slot", "no_such_slot"),
        ),
        id="template-unknown-slot",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "Абонентская плата {balance.monthly_fee|rub}",
            "Абонентская плата {no_such_slot|rub}",
            "{no_such_slot|rub}",
            ("unknown slot", "no_such_slot"),
        ),
        id="template-unknown-slot-on-2nd-line-of-block-text",
    ),
    pytest.param(
        Mistake(
            "tariffs.yml",
            "if: not confirm",
            "if: not no_such_slot",
            "no_such_slot",
            ("unknown slot", "no_such_slot", "condition"),
        ),
        id="condition-unknown-slot",
    ),
    pytest.param(
        Mistake(
            "smalltalk.yml",
            '      - say: "Понял 🙂 Если появится вопрос — просто напиши."\n',
            '      - say: "Понял 🙂 Если появится вопрос — просто напиши."\n'
            "      - end\n"
            '      - say: "Этого никто не увидит."\n',
            "Этого никто не увидит",
            ("unreachable step", "deny"),
        ),
        id="unreachable-step-after-end",
    ),
    pytest.param(
        Mistake(
            "tech.yml",
            '              - {title: "❌ Не помогло", goto: not_helped}\n'
            "      - end\n"
            "      - id: helped\n",
            '              - {title: "❌ Не помогло", goto: not_helped}\n'
            f'            - {{title: "📞 Длинная кнопка", goto: {LONG_ID}}}\n'
            "      - end\n"
            f"      - id: {LONG_ID}\n"
            '        say: "Шаг с очень длинным именем."\n'
            "      - end\n"
            "      - id: helped\n",
            "Длинная кнопка",
            ("callback data", "Длинная кнопка", "64"),
        ),
        id="button-callback-data-over-64-bytes",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            NUMBER_PORTING_BUTTONS,
            NUMBER_PORTING_BUTTONS.replace("📍 Где салоны", LONG_TITLE),
            LONG_TITLE,
            (LONG_TITLE, "VK allows 40"),
        ),
        id="button-title-over-40-characters",
    ),
    pytest.param(
        Mistake(
            "smalltalk.yml",
            'say: "Понял 🙂 Если появится вопрос — просто напиши."',
            f'say: "{LONG_TEXT}"',
            "Начало длинного ответа",
            (f"{len(LONG_TEXT)} characters", "4096"),
        ),
        id="text-over-4096-characters",
    ),
    pytest.param(
        Mistake(
            "tech.yml",
            "              buttons:\n"
            '                - {title: "💬 Всё равно нужна помощь", intent: operator}\n',
            "              buttons:  # seven rows\n" + SEVEN_ROWS,
            "# seven rows",
            ("6 rows",),
        ),
        id="vk-keyboard-over-6-rows",
    ),
    pytest.param(
        Mistake(
            "service.yml",
            "handoff: consult",
            "handoff: no_such_group",
            "no_such_group",
            ("unknown skill group", "no_such_group"),
        ),
        id="handoff-unknown-group",
    ),
    pytest.param(
        Mistake(
            "smalltalk.yml",
            '      - say: "Понял 🙂',
            '      - sya: "Понял 🙂',
            "sya:",
            ("unknown step key", "'sya'"),
        ),
        id="unknown-step-key",
    ),
    pytest.param(
        Mistake(
            "bot.yml",
            '    text: "Окей, остановился 👌 Если понадобится — просто напиши, продолжим."',
            '    tex: "Окей, остановился 👌 Если понадобится — просто напиши, продолжим."',
            "tex:",
            ("unknown key", "'tex'"),
        ),
        id="unknown-response-key",
    ),
    pytest.param(
        Mistake(
            "slots.yml",
            '    prompt: "Подтверждаешь?"\n',
            '    prompt: "Подтверждаешь?"\n    prompt: "Ещё раз: подтверждаешь?"\n',
            "Ещё раз",
            ("duplicate key", "'prompt'"),
        ),
        id="duplicate-key",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "if: balance.amount < balance.monthly_fee",
            'if: "balance.amount <"',
            "balance.amount <",
            ("'balance.amount <'", "not valid"),
        ),
        id="condition-bad-syntax",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "if: balance.amount < balance.monthly_fee",
            "if: \"__import__('os')\"",
            "__import__",
            ("__import__", "not allowed"),
        ),
        id="condition-import",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "if: balance.amount < balance.monthly_fee",
            'if: "len(balance.amount) > 0"',
            "len(",
            ("Call is not allowed",),
        ),
        id="condition-function-call",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "if: balance.amount < balance.monthly_fee",
            "if: balance.__class__",
            "__class__",
            ("names starting with _",),
        ),
        id="condition-dunder-attribute",
    ),
    pytest.param(
        Mistake(
            "slots.yml",
            "type: time_window",
            "type: no_such_type",
            "no_such_type",
            ("unknown slot type", "no_such_type"),
        ),
        id="unknown-slot-type",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "{balance.promised_payment_until|date}",
            "{balance.promised_payment_until|nope}",
            "|nope",
            ("unknown filter", "|nope"),
        ),
        id="template-unknown-filter",
    ),
    pytest.param(
        Mistake(
            "billing.yml",
            "Абонентская плата {balance.monthly_fee|rub}",
            "Абонентская плата {balance.monthly_fee|nope}",
            "|nope",
            ("unknown filter", "|nope"),
        ),
        id="template-unknown-filter-on-2nd-line-of-block-text",
    ),
]


@pytest.mark.parametrize("mistake", MISTAKES)
def test_mistake_is_reported_in_its_file_on_its_line(tmp_path: Path, mistake: Mistake) -> None:
    root = copy_content(tmp_path)
    line = introduce(root, mistake)
    assert_reported(problems_of(root), mistake.file, line, mistake.names)


# --------------------------------------------------------------------------- things missing


@pytest.mark.parametrize(
    ("file", "old", "message"),
    [
        pytest.param(
            "smalltalk.yml",
            '  deny:\n    intent: deny\n    title: "👎 Нет"\n    steps:\n'
            '      - say: "Понял 🙂 Если появится вопрос — просто напиши."\n\n',
            "missing response: intent 'deny' has no flow",
            id="intent-without-flow",
        ),
        pytest.param(
            "bot.yml",
            '  media: "Я пока понимаю только текст, фото и кнопки 🙈 Напиши, пожалуйста, вопрос словами — помогу."\n',
            "missing response 'media'",
            id="reserved-response-deleted",
        ),
    ],
)
def test_something_deleted_is_reported_as_missing(
    tmp_path: Path, file: str, old: str, message: str
) -> None:
    root = copy_content(tmp_path)
    edit(root, file, old, "")
    problems = problems_of(root)
    assert [p for p in problems if message in p.message and not p.warning], "\n".join(
        map(str, problems)
    )


# --------------------------------------------------------------------------- many at once


def test_mistakes_in_several_files_are_all_reported_together(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    mistakes = [
        Mistake(
            "service.yml",
            "    intent: roaming\n",
            "    intent: no_such_intent\n",
            "no_such_intent",
            ("unknown intent", "no_such_intent"),
        ),
        Mistake(
            "tariffs.yml",
            "if: not confirm",
            "if: not no_such_slot",
            "no_such_slot",
            ("unknown slot", "no_such_slot"),
        ),
        # A file that does not even parse does not hide the mistakes in the others.
        Mistake(
            "smalltalk.yml",
            '    intent: deny\n    title: "👎 Нет"\n',
            '    intent: deny\n     title: "👎 Нет"\n',
            'title: "👎 Нет"',
            ("YAML syntax",),
        ),
    ]
    lines = [introduce(root, m) for m in mistakes]
    problems = problems_of(root)
    for mistake, line in zip(mistakes, lines, strict=True):
        assert_reported(problems, mistake.file, line, mistake.names)


def test_two_mistakes_in_one_file_are_both_reported(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    first = Mistake(
        "smalltalk.yml",
        "say: menu",
        "say: no_such_response",
        "no_such_response",
        ("unknown response", "no_such_response"),
    )
    second = Mistake(
        "smalltalk.yml",
        "    intent: thanks\n",
        "    intent: no_such_intent\n",
        "no_such_intent",
        ("unknown intent", "no_such_intent"),
    )
    lines = [introduce(root, first), introduce(root, second)]
    problems = problems_of(root)
    assert_reported(problems, first.file, lines[0], first.names)
    assert_reported(problems, second.file, lines[1], second.names)


# --------------------------------------------------------------------------- per-channel buttons


def test_vk_override_button_is_reported_at_its_own_line(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    line = introduce(root, vk_override_with_long_title())
    assert_reported(problems_of(root), "service.yml", line, (LONG_TITLE, "VK allows 40"))


def test_vk_override_button_is_reported_only_at_its_own_line(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    line = introduce(root, vk_override_with_long_title())
    hits = [p for p in problems_of(root) if "VK allows 40" in p.message]
    assert [p.line for p in hits] == [line], "\n".join(map(str, hits))


def vk_override_with_long_title() -> Mistake:
    return Mistake(
        "service.yml",
        NUMBER_PORTING_BUTTONS,
        NUMBER_PORTING_BUTTONS.replace(
            "\n\n",
            f'\n          vk:\n            buttons:\n              - {{title: "{LONG_TITLE}", intent: offices}}\n\n',
        ),
        LONG_TITLE,
        (),
    )


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(
            NUMBER_PORTING_BUTTONS.replace(
                "\n\n",
                f'\n          telegram:\n            buttons:\n              - {{title: "{LONG_TITLE}", intent: offices}}\n\n',
            ),
            id="telegram-override-long-title",
        ),
        pytest.param(
            NUMBER_PORTING_BUTTONS.replace(
                "\n\n", "\n          telegram:\n            buttons:\n" + SEVEN_ROWS + "\n"
            ),
            id="telegram-override-seven-rows",
        ),
        pytest.param(
            "          vk:\n            buttons:\n"
            '              - {title: "📍 Где салоны", intent: offices}\n'
            "          buttons:\n" + SEVEN_ROWS.replace("    -", "  -") + "\n  roaming:\n",
            id="seven-rows-for-telegram-with-a-short-vk-override",
        ),
    ],
)
def test_buttons_only_telegram_shows_are_not_held_to_vk_limits(tmp_path: Path, new: str) -> None:
    root = copy_content(tmp_path)
    edit(root, "service.yml", NUMBER_PORTING_BUTTONS, new)
    load_content(root, INTENTS, actions=REFERENCE_ACTIONS, groups=GROUPS)


# --------------------------------------------------------------------------- CLI and warnings


@pytest.mark.usefixtures("clean_env")
def test_cli_prints_file_line_col_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_content(tmp_path)
    marker = "if: not no_such_slot"
    text = edit(root, "tariffs.yml", "if: not confirm", marker)
    line = line_of(text, marker)
    col = len(text[: text.index(marker)].rpartition("\n")[2]) + 1
    assert run_validate(root) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    wanted = f"content/dialogs/tariffs.yml:{line}:{col}: unknown slot 'no_such_slot' in condition"
    assert wanted in lines, err
    assert lines[-1] == f"1 problem(s) in {root}"


@pytest.mark.parametrize(
    ("file", "old", "new", "marker", "message"),
    [
        pytest.param(
            "bot.yml",
            "responses:\n",
            'responses:\n  spare_hint: "Подсказка, которую бот нигде не говорит."\n',
            "spare_hint",
            "response 'spare_hint' is never used",
            id="unused-response",
        ),
        pytest.param(
            "smalltalk.yml",
            "flows:\n",
            'flows:\n  orphan:\n    title: "Сирота"\n    steps:\n      - say: "Меня не вызвать."\n',
            "orphan:",
            "flow 'orphan' has no intent and nothing leads to it",
            id="flow-nothing-leads-to",
        ),
    ],
)
@pytest.mark.usefixtures("clean_env")
def test_warning_does_not_stop_the_content(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    file: str,
    old: str,
    new: str,
    marker: str,
    message: str,
) -> None:
    root = copy_content(tmp_path)
    line = line_of(edit(root, file, old, new), marker)
    content = load_content(root, INTENTS, actions=REFERENCE_ACTIONS, groups=GROUPS)
    [warning] = content.warnings
    assert warning.warning and message in warning.message
    assert warning.file.endswith(f"dialogs/{file}") and warning.line == line
    assert run_validate(root) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: ")
    assert f"content/dialogs/{file}:{line}:3: warning: {message}" in err
