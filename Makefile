# quantlab: `make report` and `make test` each work alone on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check
REPORTS ?= reports
# widget renderer + require.js inlined into HTML reports (pinned; npm registry)
JS_STAMP := .cache/npm/.installed
JS_PKGS := @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8

.PHONY: install browser report report-stored report-full test bench bench-docs lab notebooks docs clean clean-reports

install: $(STAMP) $(JS_STAMP)

# Reinstalls (and rebuilds the kernels) whenever a build input changed; else a no-op.
$(STAMP): pyproject.toml setup.py $(wildcard cython_kernels/*.pyx cython_kernels/*.pxi cython_kernels/*.h cython_kernels/simd/*.pyx) $(wildcard quantlab/_kernels/*.pyi)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip "setuptools<81" wheel
	$(PIP) install -q -e ".[dev]"
	touch $@

# Light reports: every page links the shared $(REPORTS)/_static/ (BokehJS, the widget
# renderer) by relative path; the folder opens offline from disk or any static server and
# the command prints its total size. REPORT_ARGS=--self-contained: one file per report
# (for e-mailing one); REPORT_ARGS=--keep-notebooks keeps the executed .ipynb copies.
REPORT_ARGS ?=

report: install
	$(BIN)/quantlab report --out $(REPORTS) $(REPORT_ARGS)

# The same reports from the committed notebooks' STORED outputs (kept current by
# `make notebooks`), without executing them: seconds instead of minutes. Runs with
# parameters have no stored outputs and are executed; cells whose outputs were stripped
# before committing (tagged strip-output) say so in the report.
report-stored: install
	$(BIN)/quantlab report --from-stored --out $(REPORTS) $(REPORT_ARGS)

report-full: install
	$(BIN)/quantlab report --out $(REPORTS) --config config/full.yaml $(REPORT_ARGS)

$(JS_STAMP): Makefile
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error $(JS_PKGS) && \
	  touch $@; \
	else echo "npm not found: reports will not render ipywidgets offline"; fi

# Debian's Chromium for the JupyterLab browser test (playwright drives it; nothing is
# downloaded by playwright). Installed when missing and we are root (CI); otherwise the
# test says how, and skips unless CI=true.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium"; fi; }

# The suite on TEST_WORKERS processes (pytest-xdist; default: one per core, at most 4):
# --dist loadscope keeps a test module, or a notebook's cells, in one worker, in order.
# TEST_WORKERS=0 runs it in this process. 2 cores: ~12 min, one process ~21-24 min.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

# Same numbers on every x86-64 machine with AVX2: NumPy's AVX-512 loops (exp, log, ...)
# and OpenBLAS's AVX-512 kernels differ from the AVX2 ones in the last bits, which a
# notebook's chaotic steps (an optimiser's best trial, a regime's switch) turn into other
# outputs than the stored ones (nbval compares them exactly). The tests and the stored
# outputs (`make notebooks`) use the AVX2 paths; reports use the machine's fastest.
PINNED := NPY_DISABLE_CPU_FEATURES=X86_V4,AVX512_ICL,AVX512_SPR OPENBLAS_CORETYPE=Haswell

test: install browser
	env $(PINNED) $(BIN)/python -m pytest tests notebooks --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --durations=30 \
	  -n $(TEST_WORKERS) --dist loadscope
	env $(PINNED) $(BIN)/python -m pytest quantlab --doctest-modules -p no:nbval  # docstring Examples (issue #29)

# BENCH_ARGS: e.g. "--only rolling", or a long section: "--only scale -- --assets 100 --days 30"
# numbagg: a peer of the rolling table (pyproject's [bench] extra; not in [dev], see there)
bench: install
	$(PIP) install -q "numbagg>=0.8"
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# the same run, its tables also written into docs/benchmarks.md (between its markers)
bench-docs: install
	$(PIP) install -q "numbagg>=0.8"
	$(BIN)/python benchmarks/run.py --write docs/benchmarks.md $(BENCH_ARGS)

# JupyterLab on notebooks/ at 127.0.0.1 with token auth (the URL with its token is
# printed; --allow-root is added as root). LAB_ARGS go to jupyter lab, e.g. --port=8890.
lab: install
	$(BIN)/python -m quantlab lab $(LAB_ARGS)

# The documentation site: docs/_build/html (open index.html; nothing is fetched at view
# time). Warnings are errors; the tutorial notebook is executed, the gallery is not.
docs: install
	$(BIN)/python -m sphinx -b html -W --keep-going docs docs/_build/html

# Re-execute the notebooks in place so their stored outputs are current.
notebooks: install
	env $(PINNED) $(BIN)/quantlab run-suite --in-place

# Build products only: rendered reports are results, kept until `make clean-reports`.
clean:
	rm -rf $(VENV) build quantlab/_kernels/*.so cython_kernels/*.c *.egg-info

clean-reports:
	rm -rf $(REPORTS)
