"""Phone numbers never reach the logs in clear: the filter masks messages, their arguments and
exception texts, whatever logger and handler; the app and the CLI install it."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supportbot import logmask
from supportbot.app import App
from supportbot.settings import Settings
from tests.support import CONTENT, ROOT


@pytest.fixture
def plain_records() -> Iterator[None]:
    """Records made by the standard factory, so only the filter under test masks them."""
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    yield
    logging.setLogRecordFactory(previous)


@pytest.mark.usefixtures("plain_records")
def test_the_filter_masks_message_arguments_and_exception_text() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(logmask.PhoneMaskFilter())
    log = logging.getLogger("test.logmask.filter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("SMS code to %s for account %s", "+7 916 123-45-67", "8(903)5550011")
        try:
            raise ValueError("no customer with phone 89161234567")
        except ValueError:
            log.exception("lookup failed for %s", {"phone": "+79161234567"})
        log.warning("ticket T-100 opened, 3 retries, update 123456789")  # no phone: as is
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    for clear in ("916 123-45-67", "9161234567", "903)5550011", "5550011"):
        assert clear not in text
    assert "SMS code to +7 ••• •••-45-67 for account +7 ••• •••-00-11" in text
    assert "no customer with phone +7 ••• •••-45-67" in text  # the traceback too
    assert "ticket T-100 opened, 3 retries, update 123456789" in text


def test_installed_it_masks_every_record_of_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    logmask.install()
    logmask.install()  # twice is harmless: masked once
    caplog.set_level(logging.INFO)
    logging.getLogger("bots.telegram").info("message from %s", "+7 903 555-00-11")
    logging.getLogger("some.library").warning("callback 79035550011 failed")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["message from +7 ••• •••-00-11", "callback +7 ••• •••-00-11 failed"]


@pytest.mark.usefixtures("plain_records")
def test_the_app_installs_it(tmp_path: Path) -> None:
    App(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", content_dir=CONTENT))
    record = logging.getLogRecordFactory()(
        "x", logging.INFO, __file__, 1, "to %s", ("89161234567",), None
    )
    assert record.getMessage() == "to +7 ••• •••-45-67"


def test_the_cli_installs_it(tmp_path: Path) -> None:
    """A log line written while a CLI command runs goes through the mask."""
    script = (
        "import logging, sys\n"
        "from supportbot import cli\n"
        "def fake(settings, args):\n"
        "    async def run():\n"
        "        logging.getLogger('supportbot').warning('calling +7 916 123-45-67')\n"
        "        return 0\n"
        "    return run()\n"
        "parser = cli._parser\n"
        "def patched():\n"
        "    p = parser()\n"
        "    p.set_defaults(func=fake)\n"
        "    return p\n"
        "cli._parser = patched\n"
        "cli.main([])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "calling +7 ••• •••-45-67" in out.stderr and "123-45-67" not in out.stderr
