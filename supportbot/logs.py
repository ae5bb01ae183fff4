"""Where and how the process logs: text lines (the default) or one JSON object per line.

`SUPPORTBOT_LOG_FORMAT=json` writes each record as a JSON object on one line of stderr, with
`time` (ISO 8601, UTC), `level`, `logger`, `message` and, when the line is about one subscriber
update, `channel`, `update_id` and `conversation_id` (dialogs/logcontext.py); a traceback goes
in `exception`. Phone numbers are masked in the message and the exception (supportbot/logmask.py)
in either format.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from dialogs import logcontext
from nlu.phones import mask_phones
from supportbot import logmask

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = ("alembic", "pymorphy3")  # chatty at INFO, nothing an operator needs


class JsonFormatter(logging.Formatter):
    """One JSON object per record, no newline inside (a traceback is an escaped string)."""

    def format(self, record: logging.LogRecord) -> str:
        logmask.mask_record(record)  # masked already when made; again for records made elsewhere
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (
            ("channel", logcontext.channel),
            ("update_id", logcontext.update_id),
            ("conversation_id", logcontext.conversation_id),
        ):
            value = var.get()
            if value is not None:
                entry[key] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = mask_phones(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: str = "text") -> None:
    """Log to stderr at `level` (SUPPORTBOT_LOG_LEVEL) in `log_format` (SUPPORTBOT_LOG_FORMAT),
    phone numbers masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logmask.install()
