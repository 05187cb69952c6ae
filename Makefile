# Every target sets up what it needs in .venv: a fresh machine needs only Python 3.11 and a C compiler.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXT    := grid/_primes.stamp

.PHONY: test demo bench bench-kernel bench-queues bench-grid wheel clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	$(BIN)/pip install -e '.[test,bench,report]'
	touch $@

$(EXT): grid/_primes.pyx setup.py $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace
	touch $@

test: $(STAMP) $(EXT)
	$(BIN)/python -m pytest

demo: $(STAMP) $(EXT)
	$(BIN)/grid local

bench: bench-kernel bench-queues bench-grid

bench-kernel: $(STAMP) $(EXT)
	$(BIN)/python -P benchmarks/kernel.py

bench-queues: $(STAMP) $(EXT)
	$(BIN)/python -P benchmarks/queues.py

bench-grid: $(STAMP) $(EXT)
	$(BIN)/python -P benchmarks/grid.py

wheel: $(STAMP)
	$(BIN)/python -m build --wheel

clean:
	rm -rf build dist *.egg-info grid/_primes.c grid/_primes*.so $(EXT)
