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

# The browser test of `latentvar serve` needs Debian's chromium: installed here when it is missing and apt-get
# is usable (root, or sudo without a password), as .ci/run does; otherwise that one test skips outside CI.
test: $(VENV)/.stamp-dev
	@if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	    echo "installing Debian's chromium for the browser test"; \
	    { DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } || \
	      echo "could not install chromium: the browser test will skip"; \
	  fi; \
	fi
	$(PY) -m pytest -n 2 -q

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

# The speed benchmarks (tens of minutes on 2 cores); each script prints its table, BENCHMARKS.md records them.
# Quality benchmarks (bench/colorize_quality.py, bench/generator_ais_twemoji.py, bench/ctc_speech.py) need
# trained runs or prepared data: see their docstrings.
bench: $(VENV)/.stamp-dev
	$(PIP) install -q -e '.[dev,bench]'
	PYTHONPATH=src $(PY) bench/colorize_speed.py
	PYTHONPATH=src $(PY) bench/ctc_bench.py
	PYTHONPATH=src $(PY) bench/hmm_bench.py --skip-pomegranate-viterbi
	PYTHONPATH=src $(PY) bench/estimators_bench.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
