# quantlab: `make report` and `make test` each work alone on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check
REPORTS ?= reports

.PHONY: install report report-full test bench lab notebooks clean

install: $(STAMP)

# Reinstalls (and rebuilds the kernels) whenever a build input changed; else a no-op.
$(STAMP): pyproject.toml setup.py $(wildcard cython_kernels/*.pyx) $(wildcard quantlab/_kernels/*.pyi)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip setuptools wheel
	$(PIP) install -q -e ".[dev]"
	touch $@

report: install
	$(BIN)/quantlab report --out $(REPORTS)

report-full: install
	$(BIN)/quantlab report --out $(REPORTS) --config config/full.yaml

test: install
	$(BIN)/python -m pytest tests notebooks --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg

bench: install
	$(BIN)/python benchmarks/run.py

lab: install
	$(BIN)/jupyter lab notebooks/

# Re-execute the notebooks in place so their stored outputs are current.
notebooks: install
	$(BIN)/quantlab run-suite --in-place

clean:
	rm -rf $(VENV) build reports quantlab/_kernels/*.so cython_kernels/*.c *.egg-info
