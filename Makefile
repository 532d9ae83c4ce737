# `make test` and `make demo` work on a fresh machine with only python3 and pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench clean

DEMO_STAMP := $(VENV)/.installed-demo
BENCH_STAMP := $(VENV)/.installed-bench

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs Flask and gunicorn only (the `demo` extra), not the test tools.
$(DEMO_STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

# The benchmarks compare with Starlette under uvicorn (the `bench` extra); wrk, when
# installed (apt-get install wrk), is the load generator.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

test: lint typecheck pytest

CODE := bgtask tests wsgi_demo bench noxfile.py

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: $(STAMP)
	$(BIN)/mypy --strict bgtask tests bench wsgi_demo

# The whole suite under coverage (subprocesses and forked workers included: see
# [tool.coverage.run] in pyproject.toml), then the package's branch coverage, printed.
pytest: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

demo: $(DEMO_STAMP)
	$(BIN)/gunicorn --config wsgi_demo/gunicorn.conf.py wsgi_demo.app:app

bench: $(BENCH_STAMP)
	@for script in bench/bench_*.py; do \
		module=bench.$$(basename $$script .py); echo "== $$module"; \
		$(BIN)/python -m $$module || exit 1; \
	done

clean:
	rm -rf $(VENV) .nox build *.egg-info
