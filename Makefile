# The two commands the README opens with. Each builds the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean browser

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

clean:
	rm -rf $(VENV) .autotune
