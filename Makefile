# Two commands on a fresh machine: `make run` and `make test`. Each installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: install run test lint bench fake clean chromium

install: $(STAMP)

# Re-install only when the dependency list changes, so a second `make` is instant.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python app.py $(ARGS)

# Debian's chromium drives the browser tests; Playwright's own browser download is not used.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: chromium missing and not root; browser tests will be skipped"; fi; \
	fi

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m bench

fake: install
	$(BIN)/python -m tests.fake_comfy --host 127.0.0.1 --port 8188

clean:
	rm -rf $(VENV) .pytest_cache
