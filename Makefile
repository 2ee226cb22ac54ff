# The two commands the README opens with. Each builds the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean browser lint lint-types mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/autotune demo

# The browser tests drive Debian's Chromium (a browser download at test time does not work
# here): installed with apt when missing. Where it cannot be installed, the browser tests skip
# with that reason, except under CI=true, where they fail.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
		( $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium chromium-driver ) \
			|| echo "Chromium could not be installed: the browser tests will skip (and fail under CI=true)"; \
	fi

test: $(STAMP) browser
	$(VENV)/bin/python -m pytest

# ruff (lint and format) and mypy, as configured in pyproject.toml. mypy reads deploy/local and
# deploy/gcp under their installed names (autotune_local, autotune_gcp) through links.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory lint-types

lint-types: $(STAMP)
	mkdir -p .mypy_packages
	ln -sfn ../deploy/local .mypy_packages/autotune_local
	ln -sfn ../deploy/gcp .mypy_packages/autotune_gcp
	$(VENV)/bin/mypy

# Mutation testing of the pure core ([tool.mutmut] in pyproject.toml) in a scratch copy, with
# the library under src/ where mutmut looks for it. `make mutation` then
# `cd .mutation && ../.venv/bin/mutmut browse` to read the survivors.
mutation: $(STAMP)
	rm -rf .mutation
	mkdir -p .mutation/src
	cp -r shared/autotune .mutation/src/autotune
	cp -r pyproject.toml README.md docs examples deploy functions shared bench tests Makefile .mutation/
	cd .mutation && ../$(VENV)/bin/mutmut run --max-children $${MUTATION_JOBS:-2}
	cd .mutation && ../$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) .autotune .mutation .mypy_packages
