# The two commands of the README: `make demo` and `make test`. Both start with `make setup`.
.PHONY: setup demo test lint services bench-protocol

VENV := .venv
BIN := $(VENV)/bin
# CI sets KIUNGO_REQUIRE_SERVICES=1 so that service-backed tests fail instead of skipping.
SERVICES_FLAG := $(if $(filter 1,$(KIUNGO_REQUIRE_SERVICES)),--require,)

setup:
	@scripts/setup.sh

services:
	@scripts/services.sh $(SERVICES_FLAG)

demo: setup
	$(BIN)/kiungo demo

test: setup services
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -n auto

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench-protocol: setup
	$(BIN)/python bench/protocol.py

# The exchange benchmark (bench/RESULTS.md): wrk, nginx and py-spy come from its own setup.
.PHONY: bench-exchange
bench-exchange: setup
	@bench/exchange/setup.sh
	$(BIN)/python bench/exchange/run.py
