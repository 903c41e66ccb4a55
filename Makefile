# One entry point for every task. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HELM_VERSION := v4.3.2
HELM := .cache/helm-$(HELM_VERSION)/helm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages demo test test-faults lint clean

setup: system-packages $(VENV)/.installed .cache/.kafka-libs node_modules/.installed $(HELM)

# Debian packages the local stack needs: Redis, Java + Maven for the Kafka broker, PostgreSQL for
# the outcome history, Node.js for the test tools, and Chromium for the browser tests.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
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
	$(BIN)/python -m devstack libs
	mkdir -p .cache && touch $@

# Helm, built by the machine's Go from its module (no release binary is downloaded): the chart
# tests render deploy/helm/alert-engine with it. One build per version, kept in .cache.
$(HELM):
	@command -v go >/dev/null || { echo "Go is needed to build helm $(HELM_VERSION)"; exit 1; }
	GOBIN=$(CURDIR)/.cache/helm-$(HELM_VERSION) go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mkdir -p .cache/bin && ln -sf ../helm-$(HELM_VERSION)/helm .cache/bin/helm

# Test tools from npm, pinned by package-lock.json: Prism mocks SendGrid's API contract.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/python -m devstack demo

test: setup
	$(BIN)/python -m pytest

# The long fault tests (worker SIGKILL, broker and Redis restarts mid-stream), with their figures.
test-faults: setup
	$(BIN)/python -m pytest -m slow -s -v

lint: setup
	$(BIN)/ruff check alert_engine devstack tests benchmarks standins
	$(BIN)/ruff format --check alert_engine devstack tests benchmarks standins
	$(BIN)/mypy alert_engine devstack tests benchmarks standins

clean:
	rm -rf $(VENV) node_modules .cache .demo .outbox .pytest_cache .mypy_cache .ruff_cache .hypothesis
