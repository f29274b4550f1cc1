# fleetcast developer entry points. `make` builds .venv; `make demo` and `make test` are the quick start.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHELL_SCRIPTS := $(shell git ls-files '*.sh' .ci/run 2>/dev/null)

.PHONY: all venv test test-fast lint format demo bench lock clean
all: venv
venv: $(STAMP)

# The dev lock, every file checked against its hash; then the package itself, its dependencies already in.
# And the real half-hourly demand series bench/quality.py and its tests score (bench/taylor.py).
$(STAMP): requirements/dev.lock requirements/taylor.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	$(BIN)/python -m bench.taylor
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(if $(SHELL_SCRIPTS),$(BIN)/shellcheck $(SHELL_SCRIPTS))
	$(if $(wildcard Dockerfile),$(BIN)/hadolint Dockerfile)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest

# Unit tests only, for quick local loops (under 90 s on 2 cores): no Docker image, no Java
# (Multi Model Server), nothing marked slow. `make test` runs everything.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not container and not mms and not slow"

demo: $(STAMP)
	bash local_test/demo.sh

bench: $(STAMP)
	$(BIN)/python -m bench.training

# After changing requirements/image.txt or dev.txt: re-resolve the two hashed locks with uv (from the
# registry). Pins already in a lock stay unless a requirement moved them; `make lock UPGRADE=--upgrade`
# takes the newest of everything. The dev lock is constrained to the image lock, so both share versions;
# --system-certs trusts the machine's CA store (as pip does), so a TLS-inspecting proxy works.
LOCK := $(BIN)/uv pip compile --quiet --system-certs --generate-hashes --python-version 3.11 \
	--python-platform linux --custom-compile-command "make lock" $(UPGRADE)
lock: $(STAMP)
	$(LOCK) requirements/image.txt -o requirements/image.lock
	$(LOCK) -c requirements/image.lock requirements/dev.txt -o requirements/dev.lock

clean:
	rm -rf $(VENV) demo .cache .pytest_cache .ruff_cache
