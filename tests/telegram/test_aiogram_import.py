"""bots/aiogram_import.py: aiogram imported with its types built on first use reads and writes
the same Telegram data as aiogram imported as is, and the import really skips the builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER = {"id": 7, "is_bot": False, "first_name": "Аня", "username": "anya"}
CHAT = {"id": 7, "type": "private", "first_name": "Аня"}
KEYBOARD = {"inline_keyboard": [[{"text": "💳 Оплата", "callback_data": "pay"}]]}
UPDATES = [
    {"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": CHAT, "from": USER,
                                 "text": "где оплатить?"}},
    {"update_id": 2, "callback_query": {"id": "c1", "from": USER, "chat_instance": "i", "data": "pay",
                                        "message": {"message_id": 2, "date": 1, "chat": CHAT,
                                                    "text": "Выбери", "reply_markup": KEYBOARD}}},
    {"update_id": 3, "message": {"message_id": 3, "date": 1, "chat": CHAT, "from": USER,
                                 "photo": [{"file_id": "f", "file_unique_id": "u", "width": 90,
                                            "height": 90}], "caption": "вот роутер"}},
    {"update_id": 4, "message": {"message_id": 4, "date": 1, "chat": CHAT, "from": USER,
                                 "contact": {"phone_number": "+79001234567", "first_name": "Аня",
                                             "user_id": 7}}},
    {"update_id": 5, "edited_message": {"message_id": 1, "date": 1, "edit_date": 2, "chat": CHAT,
                                        "from": USER, "text": "где оплатить связь?"}},
    {"update_id": 6, "message": {"message_id": 6, "date": 1, "chat": CHAT, "from": USER,
                                 "sticker": {"file_id": "s", "file_unique_id": "su", "type": "regular",
                                             "width": 512, "height": 512, "is_animated": False,
                                             "is_video": False, "emoji": "👍"}}},
]  # fmt: skip

SCRIPT = """
import json, sys
if sys.argv[1] == "lazy":
    import bots.telegram  # noqa: F401  (imports aiogram through bots/aiogram_import.py)
from aiogram.methods import SendMessage
from aiogram.types import Update, ReplyKeyboardMarkup, KeyboardButton
from aiogram.types import Poll
lazy_before = not Poll.__pydantic_complete__ and Update.__pydantic_complete__
updates = [Update.model_validate(u).model_dump(exclude_none=True)
           for u in json.loads(sys.stdin.read())]
keyboard = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="📱", request_contact=True)]],
                               one_time_keyboard=True)
send = SendMessage(chat_id=7, text="Привет", reply_markup=keyboard)
print(json.dumps({"lazy_before": lazy_before, "updates": updates,
                  "send": send.model_dump(exclude_none=True)}, default=repr))
"""


def run(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        input=json.dumps(UPDATES), capture_output=True, text=True, cwd=ROOT, timeout=120,
        check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_types_built_on_first_use_read_and_write_what_aiogram_does() -> None:
    lazy, eager = run("lazy"), run("eager")
    assert lazy["lazy_before"] is True  # the import skipped the builds
    assert eager["lazy_before"] is False  # aiogram as is builds every type at import
    # (lazy: Update and Message, which every message goes through, are built at import)
    assert lazy["updates"] == eager["updates"]
    assert lazy["send"] == eager["send"]
    texts = [u.get("message", u.get("edited_message", {})).get("text") for u in lazy["updates"]]
    assert texts[0] == "где оплатить?" and texts[4] == "где оплатить связь?"
    assert lazy["updates"][1]["callback_query"]["message"]["reply_markup"] == KEYBOARD
    assert lazy["updates"][3]["message"]["contact"]["phone_number"] == "+79001234567"


OTHER_MODELS = """
import bots.telegram  # noqa: F401  (installs the rebuild wrapper)
from pydantic import BaseModel

def scope():
    class Holder(BaseModel):
        later: "Later"

    class Later(BaseModel):  # made after Holder: only the rebuild's caller's frame knows it
        x: int

    Holder.model_rebuild()  # resolves Later from this function's frame, as pydantic promises
    return Holder(later={"x": 1}).later.x

print(scope())
"""


def test_other_pydantic_models_rebuild_as_before() -> None:
    out = subprocess.run(
        [sys.executable, "-c", OTHER_MODELS], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"
