"""Phone numbers never reach the logs in clear (152-ФЗ): every log record is masked.

`PhoneMaskFilter` rewrites a record's message (its arguments merged in) and any exception text
with `nlu.phones.mask_phones`: "+7 916 123-45-67" becomes "+7 ••• •••-45-67". `install()` puts it
where every record passes, whoever logs it and whichever handler writes it: the log record
factory (each record is masked as it is made), plus the root logger's current handlers. The CLI
installs it once logging is configured, and `App` when it is built; installing twice is harmless.

Looser than a phone parser on purpose (mask_phones: any 10-12 digit run): a 10-digit Telegram
user id in a message is masked too. Log ids as such where they matter, e.g. `chat=%s` of a
shorter one, or accept it: a user id next to an event is personal data as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nlu.phones import mask_phones

_MASKED = "_phones_masked"


class PhoneMaskFilter(logging.Filter):
    """Masks phone numbers in a record's message and exception text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, _MASKED, False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports it itself, later
        return record
    masked = mask_phones(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_phones(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_phones(record.stack_info)
    setattr(record, _MASKED, True)
    return record


_FILTER = PhoneMaskFilter()


def install() -> None:
    """Mask every log record from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, _MASKED, False):
        previous: Callable[..., logging.LogRecord] = factory

        def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return mask_record(previous(*args, **kwargs))

        setattr(masking_factory, _MASKED, True)
        logging.setLogRecordFactory(masking_factory)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
