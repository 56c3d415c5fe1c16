# Every target sets up what it needs: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := pyproject.toml setup.py $(wildcard src/wsfast/*.pyx src/wsfast/*.pxd)

.PHONY: setup run test test-contract test-pure bench lint docs fuzz clean

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	WSFAST_BUILD_EXTENSION=yes $(BIN)/python -m pip install --quiet -e '.[test,bench,lint]'
	touch $(STAMP)

setup: $(STAMP)

## The main job: decode a synthetic market-data feed with both implementations.
run: $(STAMP)
	$(BIN)/wsfast demo

## The whole test suite: every codec test runs against the compiled and the pure twin in one run,
## and the benchmarks run once each as smoke tests (no timing).
test: $(STAMP)
	$(BIN)/python -m pytest tests benchmarks --benchmark-disable -q

## The contract suite alone: every front-end x event loop x codec twin against real servers and real
## proxies (tinyproxy, microsocks, dante-server, nginx, ssh -D: .ci/run installs them; missing ones skip).
test-contract: $(STAMP)
	$(BIN)/python -m pytest tests/contract -q

## Force the pure-Python twins everywhere (WSFAST_NO_EXTENSIONS=1).
test-pure: $(STAMP)
	WSFAST_NO_EXTENSIONS=1 $(BIN)/python -m pytest tests -q

## Timed benchmarks: compiled vs pure vs peers, medians per group.
bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-group-by=group \
		--benchmark-columns=median,iqr,ops,rounds --benchmark-sort=median

## Style, types, and the .pyi stubs of the compiled modules checked against the built modules.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks compliance docs fuzz setup.py
	$(BIN)/ruff format --check src tests benchmarks compliance docs fuzz setup.py
	$(BIN)/mypy --strict src/wsfast
	$(BIN)/python -m mypy.stubtest --allowlist stubtest-allowlist.txt wsfast._codec_c wsfast._mask_c wsfast._utf8_c
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/cython-lint src/wsfast

## The API reference (docs/api.md) from the docstrings; tests/test_docs.py checks it is up to date.
docs: $(STAMP)
	$(BIN)/python docs/generate.py

## Long hypothesis run of the differential tests (HYPOTHESIS_PROFILE=dev), then each atheris harness
## (fuzz/) for FUZZ_SECONDS; new inputs go to build/fuzz/<target>, failing ones to build/fuzz/<target>-crash-*.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= decoder protocol handshake
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest tests/test_differential.py tests/test_differential_protocol.py -q
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install --quiet atheris
	for target in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/$$target && \
		$(BIN)/python fuzz/fuzz_$$target.py build/fuzz/$$target fuzz/corpus/$$target \
			-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/$$target- -rss_limit_mb=2048 \
			|| exit 1; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info src/wsfast/*.c src/wsfast/*.so src/wsfast/*.html
