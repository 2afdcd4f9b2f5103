VENV ?= .venv
PY := $(VENV)/bin/python
LF := $(VENV)/bin/lf-bulk
STAMP := $(VENV)/.installed

.PHONY: install demo test lint sandbox bench chaos clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(PY) -m jobs.demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check lf_bulk jobs tests
	$(VENV)/bin/ruff format --check lf_bulk jobs
	$(VENV)/bin/mypy

sandbox: install
	$(LF) sandbox serve --port 8765

bench: install
	$(PY) -m bench.run

chaos: install
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .lf-bulk lf-bulk-reports .pytest_cache .mypy_cache
