# The two commands a new user types: `make run` and `make test`.
# Everything the project needs is installed here, never by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit e2e image bench soak debian-packages prometheus chromium redis-server clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/batch-job-exporter --demo

# The Debian packages the tests need, each as FILE:PACKAGE (installed when FILE is missing):
# - promtool and prometheus, from `prometheus`;
# - redis-server, for the fleet's tests (tests/fleet/), from `redis-server`;
# - the jobs page's browser tests (tests/test_browser.py) drive Debian's chromium through
#   its chromedriver; selenium is given both paths and never downloads a browser or driver.
#   A font, so that the screenshots have text in them on a minimal machine.
DEBIAN_NEEDS := \
  /usr/bin/promtool:prometheus /usr/bin/prometheus:prometheus \
  /usr/bin/redis-server:redis-server \
  /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver \
  /usr/bin/chromium:fonts-dejavu-core

# Whatever is missing, after one `apt-get update`, in one `apt-get install`.
debian-packages:
	@missing=$$(for need in $(DEBIAN_NEEDS); do \
	  [ -x "$${need%%:*}" ] || echo "$${need#*:}"; done | sort -u); \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    $$missing >/dev/null; }

# The names other targets depend on: each is the one step above.
prometheus chromium redis-server: debian-packages

# The import contracts (pyproject's [tool.importlinter]) keep the layers one-way.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) prometheus chromium
	$(BIN)/pytest --cov --cov-report=term

test: lint typecheck unit image

# Only the end-to-end tests: real processes, a real Prometheus, a real browser.
e2e: $(STAMP) prometheus chromium
	$(BIN)/pytest -m e2e

# The container image built from the Dockerfile with buildah (no Docker needed) and run:
# tests/test_image.py, which `unit` skips. Installs buildah and mmdebstrap with apt-get
# when missing (with sudo when not root); the base rootfs is cached in ~/.cache.
image: $(STAMP)
	scripts/image-tools.sh
	BATCH_JOB_EXPORTER_IMAGE_TEST=1 $(BIN)/pytest tests/test_image.py

bench: $(STAMP) redis-server
	$(BIN)/python -m bench

# The soak (soak/): three exporters on one Redis and one simulator with every fault, SIGKILLs
# and Redis outages, for $(SOAK) of chaos (`make soak SOAK=3m` for a short one), then a table
# of its checks; it fails if one does. Its 40 s run is part of `make unit` (tests/test_soak.py).
SOAK ?= 30m
soak: $(STAMP) redis-server
	$(BIN)/python -m soak --duration $(SOAK)

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache .coverage
