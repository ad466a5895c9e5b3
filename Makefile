# Two commands on a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned to the CPU build that pip finds locally, so pip
# never pulls a multi-GB CUDA build; then the package with its dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/semdenoise reproduce plaques --quick --out reports/demo

clean:
	rm -rf $(VENV) reports
