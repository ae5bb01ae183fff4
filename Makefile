# Two entry points for a newcomer: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: demo test test-rasa lint typecheck clean chromium

# What the product needs to run (the demo stops here: no test or lint tools to download).
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip  # the bundled pip resolves this tree ~10 s slower
	$(BIN)/pip install -q -e .
	touch $(RUN_STAMP)

# Plus the development tools (pytest, ruff, mypy, Playwright) for `make test`.
$(STAMP): $(RUN_STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(RUN_STAMP)
	$(BIN)/supportbot demo

lint: $(STAMP)
	$(BIN)/ruff check bots delivery emulators nlu dialogs services handoff storage supportbot tests bench
	$(BIN)/ruff format --check bots delivery emulators nlu dialogs services handoff storage supportbot tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The console's browser tests drive Debian's headless Chromium (CI: a fresh machine, root, no stdin).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: $(STAMP) lint typecheck chromium
	$(BIN)/pytest -q -m "not rasa" || [ $$? -eq 5 ]  # exit 5 = no tests collected

# A real Rasa 3.6 server (own Python 3.10 venv, cached under ~/.cache/supportbot/rasa).
test-rasa: $(STAMP)
	$(BIN)/pytest -q -m rasa tests/rasa

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
