# Gardien: `make run` starts everything on the embedded stack; `make test` runs the suite.
# Both build the environment from nothing: a private uv in .tools/, then .venv from uv.lock.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced

.PHONY: run test lint check env clean bench bench-replicas chaos browser

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $(STAMP)

env: $(STAMP)

run: env
	$(VENV)/bin/gardien up $(ARGS)

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check shared services gardien tests examples bench
	$(VENV)/bin/mypy shared services gardien tests/support.py

# Two pytest-xdist workers by default, each with its own embedded stack and whole modules
# (tests/conftest.py): about 9 minutes on 2 cores instead of 14. TEST_WORKERS=1: one process.
TEST_WORKERS ?= 2
test: lint browser
	$(VENV)/bin/pytest -ra $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope)

# The console's browser tests drive Debian's Chromium (never a downloaded one). Installed
# here when missing and apt-get can run as root; otherwise those tests skip with the reason.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the console's browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| echo "could not install chromium (apt-get failed)"; \
	fi
	@[ -x $(CHROMIUM) ] || echo "no $(CHROMIUM): the console's browser tests will be skipped"

# Fault injection (issue 7, docs/reliability.md; kill -9 at 10,000 events and 20 kills, issue 12):
# under 30 minutes on 2 cores. A reduced run: CHAOS_EVENTS=2000 CHAOS_KILLS=6 make chaos.
chaos: env
	$(VENV)/bin/python -m tests.chaos.run_all

clean:
	rm -rf $(TOOLS) $(VENV) .gardien .pytest_cache .mypy_cache .ruff_cache

bench: env
	$(VENV)/bin/python -m bench.run_all

# 1, 2 and 4 members per service, a member stopped mid-run, correctness checked (docs/scaling.md).
bench-replicas: env
	$(VENV)/bin/python -m bench.replicas $(ARGS)
