# The two README commands: `make up` runs the system, `make test` runs every check.
# Both install what is missing first, so a fresh clone needs no other step.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the tests and the full stack need (binaries checked below). PostgreSQL's
# server lives in /usr/lib/postgresql/<major>/bin, off the PATH: checked by its initdb.
# Java and Maven run Apache Kafka from its Maven Central jars (services/common/apache_kafka.py).
APT_PACKAGES := postgresql prometheus prometheus-alertmanager docker-compose chromium \
	openjdk-17-jre-headless maven
APT_BINARIES := prometheus promtool prometheus-alertmanager amtool docker-compose chromium \
	java mvn

SIMULATOR      ?= on
# Prometheus and Alertmanager with production's rules and routes (services/monitoring.py).
MONITORING     ?= on
# Unset: the simulator's own rate, EGOV_SIMULATOR_RATE or else 0.25 events/s.
SIMULATOR_RATE ?=
BROKER         ?= tansu

.PHONY: up test bench lint typecheck pytest install apt clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The benchmarks' extra (plots) on top of the dev install.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# apt-get update only when something is actually missing: it is slow.
apt:
	@missing=""; for b in $(APT_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing initdb"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages (missing:$$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

up: install apt
	$(BIN)/egov-pulse up --broker $(BROKER) --simulator $(SIMULATOR) --monitoring $(MONITORING) \
		$(if $(SIMULATOR_RATE),--simulator-rate $(SIMULATOR_RATE))

lint: install
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench

typecheck: install
	$(BIN)/mypy

# Every test that talks to a broker on the embedded tansu and, side by side, again on
# Apache Kafka with the idempotent producer (tests/servers.py); each test that needs no
# broker once, in one run or the other. Each run starts its own servers, and mostly waits
# on them (tests/both_brokers.py).
pytest: install apt
	$(BIN)/python -m tests.both_brokers

test: lint typecheck pytest

bench: $(BENCH_STAMP) apt
	$(BIN)/python -m bench --mode $(or $(MODE),quick)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
