# `make test` and `make demo` work on a fresh machine with only python3 and pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check bgtask tests wsgi_demo bench noxfile.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict bgtask tests/typing_public_api.py

pytest: $(STAMP)
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/gunicorn --config wsgi_demo/gunicorn.conf.py wsgi_demo.app:app

bench: $(STAMP)
	@for script in bench/bench_*.py; do \
		module=bench.$$(basename $$script .py); echo "== $$module"; \
		$(BIN)/python -m $$module || exit 1; \
	done

clean:
	rm -rf $(VENV) .nox build *.egg-info
