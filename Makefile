VENV ?= .venv
PY := $(VENV)/bin/python
LF := $(VENV)/bin/lf-bulk
STAMP := $(VENV)/.installed

.PHONY: install constraints demo test lint docs sandbox bench chaos clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -c constraints.txt pip setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Re-resolve every dependency to its newest allowed version and pin the result.
constraints:
	rm -rf .venv-refresh
	python3 -m venv .venv-refresh
	.venv-refresh/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	.venv-refresh/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .venv-refresh/bin/python -m pip freeze --all --exclude-editable | grep -v '^-e'; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .venv-refresh

demo: install
	$(PY) -m jobs.demo

# Four workers on two cores: most of the suite waits on sockets and sandboxes, not the CPU.
test: install
	$(PY) -m pytest -q -n 4 --dist worksteal

lint: install
	$(VENV)/bin/ruff check lf_bulk jobs tests
	$(VENV)/bin/ruff format --check lf_bulk jobs
	$(VENV)/bin/mypy

# docs/cli.md, every command's --help, from the code (tests/test_docs.py checks it is current).
docs: install
	$(PY) docs/make_cli_md.py

sandbox: install
	$(LF) sandbox serve --port 8765

bench: install
	$(PY) -m bench.run

chaos: install
	$(PY) -m pytest -q -m slow -n 4 --dist worksteal

clean:
	rm -rf $(VENV) .lf-bulk lf-bulk-reports .pytest_cache .mypy_cache
