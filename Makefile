# fleetcast developer entry points. `make` builds .venv; `make demo` and `make test` are the quick start.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHELL_SCRIPTS := $(shell git ls-files '*.sh' .ci/run 2>/dev/null)

.PHONY: all venv test test-fast lint format demo bench constraints clean
all: venv
venv: $(STAMP)

$(STAMP): requirements/image.txt requirements/dev.txt requirements/constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements/constraints.txt -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
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

# After changing requirements/*.txt: install them, then record the full pin set the image also uses.
constraints:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/dev.txt
	(echo "# Full pin set of the dev environment (regenerate: make constraints). The image installs requirements/image.txt under these too."; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^fleetcast') > requirements/constraints.txt

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
