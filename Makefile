# Two commands on a fresh machine: `make run` and `make test`. Each installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
# How the venv is built (variables, so tests/unit/test_makefile.py can stub them).
VENV_CREATE = $(PY) -m venv $(VENV)
PIP_INSTALL = $(BIN)/pip install --quiet --upgrade pip && $(BIN)/pip install --quiet -e '.[test]'

.PHONY: install run test lint bench fake clean chromium

install: $(STAMP)

# Re-install only when the dependency list changes, so a second `make` is instant.
# Two makes at once (`make fake &` then `make run` on a fresh clone) must not build the venv
# together: the stamp's rule takes a lock (flock from util-linux, on pyproject.toml) and runs
# make again for the stamp, so the second one waits, then finds the stamp fresh and does nothing.
ifdef INSTALL_LOCKED
$(STAMP): pyproject.toml
	test -d $(VENV) || { $(VENV_CREATE); }
	$(PIP_INSTALL)
	touch $(STAMP)
else
FLOCK := $(shell command -v flock 2>/dev/null)
$(STAMP): pyproject.toml
	$(if $(FLOCK),$(FLOCK) pyproject.toml) $(MAKE) --no-print-directory INSTALL_LOCKED=1 $(STAMP)
endif

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

# Two passes. Everything but the browser tests on three workers (most of them wait on sockets
# and fakes, not the CPU: a serial run keeps ~35% of 2 cores busy; tests/conftest.py keeps each
# file, and the matrix folder, whole on one worker). Then the browser tests alone, one after
# another: beside other work on 2 cores their timing checks (Stop under 2 s) are not fair.
PYTEST_WORKERS ?= -n 3 --dist loadgroup

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q $(PYTEST_WORKERS) --ignore=tests/browser $(PYTEST_ARGS)
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q tests/browser $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m bench

# The fake ComfyUI at a speed a person can watch (progress, previews, Stop; a cold start loads
# its models for a few seconds). Set FAKE_PORT, FAKE_STEP_DELAY, FAKE_LOAD_DELAY,
# FAKE_PREVIEWS, or pass any flag in FAKE_ARGS (it comes last, so it wins):
#   make fake FAKE_ARGS="--port 8189 --step-delay 0.3 --preview-method none"
FAKE_PORT ?= 8188
FAKE_STEP_DELAY ?= 0.25
FAKE_LOAD_DELAY ?= 3
FAKE_PREVIEWS ?= auto
fake: install
	$(BIN)/python -m tests.fake_comfy --host 127.0.0.1 --port $(FAKE_PORT) \
	  --step-delay $(FAKE_STEP_DELAY) --load-delay $(FAKE_LOAD_DELAY) \
	  --preview-method $(FAKE_PREVIEWS) $(FAKE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
