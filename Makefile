# One entry point for every task. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages demo test test-faults lint clean k8s-rules

setup: system-packages $(VENV)/.installed .cache/.kafka-libs node_modules/.installed

# Debian packages the local stack needs: Redis, Java + Maven for the Kafka broker, Node.js for
# the test tools, and Chromium for the survey page's browser test.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The Kafka broker's jars, resolved from Maven Central by deploy/kafka/pom.xml.
.cache/.kafka-libs: deploy/kafka/pom.xml $(VENV)/.installed
	$(BIN)/python -m alert_engine.stack libs
	mkdir -p .cache && touch $@

# Test tools from npm, pinned by package-lock.json: Prism mocks SendGrid's API contract.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/alert-engine demo

test: setup
	$(BIN)/python -m pytest

# The long fault tests (worker SIGKILL, broker and Redis restarts mid-stream), with their figures.
test-faults: setup
	$(BIN)/python -m pytest -m slow -s -v

lint: setup
	$(BIN)/ruff check alert_engine tests benchmarks standins
	$(BIN)/ruff format --check alert_engine tests benchmarks standins
	$(BIN)/mypy alert_engine

# The Kubernetes rules ConfigMap, generated from rules/.
k8s-rules: setup
	$(BIN)/python deploy/k8s/render_rules_configmap.py

clean:
	rm -rf $(VENV) node_modules .cache .demo .outbox .pytest_cache .mypy_cache .ruff_cache .hypothesis
