# automix-lite: two commands on a fresh clone (Python 3.10-3.12, make and git are all you need).
#   make book   execute every notebook (AUTOMIX_MODE=standard) and build the HTML book into _build/html
#   make test   the same set-up, then all tests, including every notebook executed in AUTOMIX_MODE=fast
# Other targets: make bench (speed vs peer libraries), make data (regenerate data/ with FluidSynth),
# make lock (re-pin requirements.lock), make clean.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-from-lock
AUTOMIX_MODE ?= standard
JB_ARGS := --config book/_config.yml --toc book/_toc.yml
# torch's OpenMP threads busy-wait by default, which on a 2-core machine leaves little CPU to anything else; under
# such load we saw widget cells wait for their whole timeout (jupyter/nbclient#312). The book and the tests use
# passive waiting; set OMP_WAIT_POLICY yourself to override.
PASSIVE := OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE}

.PHONY: all setup book test bench data lock clean

all: test

# The environment is (re)built only when the lock or the package metadata changes.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else "automix-lite needs Python 3.10-3.12; this is %d.%d. Use make PYTHON=python3.11" % v)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import automix_lite, torch; print('automix_lite', automix_lite.__version__, 'on torch', torch.__version__)"
	touch $(STAMP)

setup: $(STAMP)

book: setup
	@# the execution cache is keyed on notebook source only: clear it when the run mode changes
	@if [ "$$(cat _build/.automix-mode 2>/dev/null)" != "$(AUTOMIX_MODE)" ]; then \
		rm -rf _build/.jupyter_cache _build/.doctrees _build/html _build/jupyter_execute; fi
	AUTOMIX_MODE=$(AUTOMIX_MODE) $(PASSIVE) $(BIN)/jupyter-book build . $(JB_ARGS) --warningiserror --keep-going
	@echo "$(AUTOMIX_MODE)" > _build/.automix-mode
	@echo "Open _build/html/index.html"

test: setup
	AUTOMIX_MODE=fast $(PASSIVE) $(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	# torchlpc ships as source: rebuild its C++ extension against the installed torch
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --no-cache-dir --force-reinstall torchlpc==0.7.2
	$(BIN)/python benchmarks/run.py --out benchmarks/RESULTS.md

data: setup
	@# renders data/ from scratch; checks for fluidsynth and the SoundFont first (see data/README.md)
	$(BIN)/python -m automix_lite.data.render --out data

lock:
	rm -rf /tmp/automix-lock-venv && $(PYTHON) -m venv /tmp/automix-lock-venv
	/tmp/automix-lock-venv/bin/python -m pip install --quiet -r requirements.in
	$(PYTHON) tools/freeze_lock.py /tmp/automix-lock-venv/bin/python

clean:
	rm -rf _build
