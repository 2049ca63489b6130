# syncd: `make demo` shows it working, `make test` proves it. Both create .venv when missing.
SHELL := /bin/bash
# The first Python 3.11+ on PATH, unless PYTHON is given.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install lint typecheck promtool test drill demo bench simulate clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "syncd needs Python 3.11 or newer on PATH (or PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
		echo "creating the virtualenv failed: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check syncd tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# promtool runs the Prometheus rules' unit tests (tests/test_monitoring_rules.py). When it is not on
# PATH, get-promtool unpacks it from Debian's prometheus package into .venv (as root it may run
# apt-get update); where that cannot work (no apt-get), those tests skip and say so.
promtool: $(STAMP)
	@command -v promtool >/dev/null 2>&1 || test -x $(BIN)/promtool || \
		deploy/prometheus/get-promtool $(BIN)/promtool || \
		echo "promtool is not available: the Prometheus rule tests will skip"

test: lint typecheck promtool
	$(BIN)/pytest -q

# The long drill (tests/drills, several minutes): replicas, faults, a kill -9; prints the table.
drill: $(STAMP)
	DRILL=long $(BIN)/pytest -q -p no:cacheprovider tests/drills

# The demo ends by printing the console's URL and keeps it browsable until Ctrl-C;
# `make demo DEMO_FLAGS=` exits right after the cycle instead.
DEMO_FLAGS ?= --keep
demo: $(STAMP)
	$(BIN)/syncd demo $(DEMO_FLAGS)

bench: $(STAMP)
	$(BIN)/python -m bench

simulate: $(STAMP)
	$(BIN)/syncd simulate

clean:
	rm -rf $(VENV) .syncd .syncd-sim .pytest_cache .mypy_cache .ruff_cache *.egg-info
