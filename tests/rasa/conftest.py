"""Rasa tests: the `rasa` marker (real Rasa server, minutes) runs only when asked for.

`pytest -m rasa` (make test-rasa) runs them; a plain `pytest` skips them with a visible reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"  # a tiny content dir: nlu/ and nlu_test/


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rasa: needs a real Rasa 3.6 server (pytest -m rasa)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "rasa" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="real Rasa server: run with `pytest -m rasa` (make test-rasa)")
    for item in items:
        if item.get_closest_marker("rasa") is not None:
            item.add_marker(skip)
