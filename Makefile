# Two commands matter: `make run` and `make test`. Both install what is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
WORKERS ?= 1
# `make test` runs in two passes (tests/conftest.py): the suite but its load-sensitive
# files, TEST_WORKERS pytest-xdist processes at once (0: in this process), then those
# files alone, one after another.
TEST_WORKERS ?= 3

.PHONY: run test test-deploy bench load lint format deps system-deps


run: deps
	$(PY) -m stack --workers $(WORKERS)

test: deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not load_sensitive"
	$(PY) -m pytest -m load_sensitive

# The image and compose.yaml for real (tests/deploy/test_deploy.py): builds the image from
# this checkout, starts a compose project of its own with 3 workers, applies faults to its
# containers, and always ends with `docker compose down -v`. Starts Docker with
# ../shared/tools/docker-here.sh (as root) when none answers. Not part of `make test`;
# .ci/run runs it after `make test`.
test-deploy: deps
	@docker info >/dev/null 2>&1 || bash ../shared/tools/docker-here.sh
	DEPLOY_TESTS=1 $(PY) -m pytest tests/deploy/test_deploy.py -v -rsxX

bench: deps
	$(PY) -m bench

load: deps
	$(PY) -m bench.load

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

deps: system-deps $(STAMP)

# requirements-dev.txt includes requirements.txt (the runtime, all the image installs):
# an edit to either reinstalls.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { $(MAKE) --no-print-directory apt PKGS=python3-venv && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

# libmagic (for MIME detection) and redis-server (for `make run` and the tests)
# come from the system's packages.
system-deps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1' || missing="$$missing libmagic1"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory apt PKGS="$$missing"; fi

apt:
	@echo "installing with apt:$(PKGS)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	else echo "cannot install$(PKGS): not root and no sudo; install them and retry" >&2; exit 1; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(PKGS)
