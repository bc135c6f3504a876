# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# torch first and pinned: 2.13.0 is the CPU build on these machines' disk.
TORCH  := torch==2.13.0

.PHONY: demo test lint bench clean

$(VENV)/.stamp-base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(VENV)/.stamp-base
	$(PIP) install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.stamp-base
	$(VENV)/bin/latentvar demo --out runs/demo

test: $(VENV)/.stamp-dev
	$(PY) -m pytest -n 2 -q

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

bench: $(VENV)/.stamp-dev
	$(PIP) install -q -e '.[dev,bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
