# AI Workspace: `make run` serves the dashboard with demo data, `make test`
# runs the suite. Both create .venv on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SIMULATOR_PORT ?= 8001

.PHONY: run test install install-test demo lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	mkdir -p var
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo --simulator-url http://127.0.0.1:$(SIMULATOR_PORT) \
		--dashboard-url http://$(HOST):$(PORT)/

# The dashboard and the gateway (uvicorn, one worker: the default local-memory
# cache is per process), the upstream simulator on 127.0.0.1:$(SIMULATOR_PORT), and a slow
# replay of a real trace through the gateway so Insights fill while you watch.
# Ctrl-C stops all three.
run: demo
	@trap 'kill $$simulator $$server $$replay 2>/dev/null; wait' INT TERM EXIT; \
	$(BIN)/python manage.py simulate_upstream --port $(SIMULATOR_PORT) & simulator=$$!; \
	$(BIN)/uvicorn workspace.asgi:application --host $(HOST) --port $(PORT) --no-access-log & server=$$!; \
	$(BIN)/python manage.py replay_trace --demo --wait 30 --gateway http://$(HOST):$(PORT) \
		--rate 1 --loop --error-every 40 --no-progress & replay=$$!; \
	wait

test: install-test
	$(BIN)/python -m pytest -n auto -rs

lint: install-test
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var staticfiles
