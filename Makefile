# The two set-up commands are `make run` and `make test`; everything else is a step of them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help prereqs install kafka-jars run test test-fast test-slow test-chaos lint fmt schemas kafka-up kafka-down clean bench-simulator bench-sender bench-ingest bench-replay

help:
	@echo "make run        set up everything and run the main job"
	@echo "make test       set up everything and run the test suite (real Kafka broker)"
	@echo "make test-slow  long fault and load runs (not part of make test)"
	@echo "make test-chaos the whole stack under seeded faults on a 3-node cluster (CHAOS_SEED=1)"
	@echo "make lint       ruff + mypy --strict + schema drift check"
	@echo "make schemas    regenerate schemas/ from the models"
	@echo "make bench-simulator  simulator req/s vs a raw ASGI endpoint"
	@echo "make bench-sender     sender sends/s vs raw aiokafka+httpx and a naive FastStream handler"
	@echo "make bench-ingest     webhooks/s acknowledged vs a bare ASGI + producer endpoint"
	@echo "make bench-replay     events/s rebuilt into memory and SQLite vs raw aiokafka consumption"

prereqs:
	@scripts/ensure-prereqs.sh

$(STAMP): pyproject.toml | prereqs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[services,dev]'
	@touch $@

install: prereqs $(STAMP)

kafka-jars: install
	@$(BIN)/mmbus kafka fetch

run: install kafka-jars
	$(BIN)/mmbus run

test: install kafka-jars
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m 'not kafka'

test-slow: install kafka-jars
	$(BIN)/pytest -m slow

# One seeded run (about 20,000 commands); figures are printed and kept in
# $(CHAOS_WORKDIR)/seed-N/findings.json with every part's log.
CHAOS_SEED ?= 1
CHAOS_WORKDIR ?= .chaos
test-chaos: install kafka-jars
	CHAOS_SEED=$(CHAOS_SEED) CHAOS_WORKDIR=$(abspath $(CHAOS_WORKDIR)) $(BIN)/pytest -m chaos tests/chaos

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mmbus schemas export --check

schemas: install
	$(BIN)/mmbus schemas export

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-simulator: install
	@scripts/ensure-prereqs.sh --bench
	$(BIN)/python -m bench.simulator

bench-ingest: install kafka-jars
	@scripts/ensure-prereqs.sh --bench
	$(BIN)/python -m bench.ingest

bench-sender: install kafka-jars
	$(BIN)/python -m bench.sender

bench-replay: install kafka-jars
	$(BIN)/python -m bench.replay

kafka-up: install kafka-jars
	$(BIN)/mmbus kafka up

kafka-down: install
	$(BIN)/mmbus kafka down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
