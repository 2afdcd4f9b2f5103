VENV ?= .venv
PY := $(VENV)/bin/python
LF := $(VENV)/bin/lf-bulk
STAMP := $(VENV)/.installed

.PHONY: install constraints demo test lint docs sandbox bench chaos clean bytecode browser assert-cache

install: $(STAMP)

# Selenium (the browser tests) talks to chromedriver over HTTP: it is installed with the
# requirements that needs. The others, trio and trio-websocket, serve only its asynchronous BiDi
# API, which the tests never use; installed, trio is imported by httpcore in every process that
# loads httpx (0.1 s of CPU each, in the hundreds of lf-bulk processes the suite starts).
BROWSER_DRIVER := selenium urllib3 certifi typing_extensions websocket-client

$(STAMP): setup.cfg pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -c constraints.txt pip setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -c constraints.txt $(BROWSER_DRIVER)
	touch $(STAMP)

# The suite starts lf-bulk in hundreds of processes: compiled once here, not in each of them
# (a shell with PYTHONDONTWRITEBYTECODE set never caches what it compiles).
bytecode: install
	$(PY) -m compileall -q -j 0 lf_bulk jobs > /dev/null

# Re-resolve every dependency to its newest allowed version and pin the result.
constraints:
	rm -rf .venv-refresh
	python3 -m venv .venv-refresh
	.venv-refresh/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	.venv-refresh/bin/python -m pip install --quiet -e '.[dev]'
	.venv-refresh/bin/python -m pip install --quiet --no-deps $(BROWSER_DRIVER)
	{ sed -n '1,2p' constraints.txt; .venv-refresh/bin/python -m pip freeze --all --exclude-editable | grep -v '^-e'; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .venv-refresh

demo: install
	$(PY) -m jobs.demo

# pytest rewrites the asserts of every test module it imports: about 7 s of CPU in each of the
# workers. Done here once, by two processes each importing half the modules, and cached in
# tests/__pycache__ for the workers to load (also cached: the helper modules they import). A shell
# with PYTHONDONTWRITEBYTECODE set would stop both caches: pytest runs with it cleared. A
# collection error is not reported here but by the run that follows.
NO_DONT_WRITE := PYTHONDONTWRITEBYTECODE=
COLLECT_ONLY := $(NO_DONT_WRITE) xargs $(PY) -m pytest --collect-only -q -p no:xdist -p no:cacheprovider
assert-cache: install
	@modules="$$(ls tests/test_*.py tests/e2e/test_*.py)"; \
	echo "$$modules" | awk 'NR % 2 == 1' | $(COLLECT_ONLY) > /dev/null 2>&1 & \
	echo "$$modules" | awk 'NR % 2 == 0' | $(COLLECT_ONLY) > /dev/null 2>&1; \
	wait; true

# The suite's scratch files (journals, sandboxes, workbooks, the throwaway PostgreSQL cluster) go
# to memory when the machine has a writable /dev/shm: the same SQLite and PostgreSQL files without
# the disk's bookkeeping, about 15 s of a two-minute run here. A TMPDIR of the caller's own wins.
# Only failed tests keep their folders (pyproject.toml: tmp_path_retention_policy).
SCRATCH := $(if $(TMPDIR),,$(shell test -d /dev/shm -a -w /dev/shm && echo TMPDIR=/dev/shm))

# Five workers on two cores: the suite is CPU-bound, but a fifth worker keeps the cores busy while
# the others wait on sockets, sandboxes and kill trials (measured: about 4 s less than four).
test: install bytecode assert-cache
	$(NO_DONT_WRITE) $(SCRATCH) $(PY) -m pytest -q -n 5 --dist worksteal

# The browser the console's end-to-end tests drive (tests/e2e): Debian's chromium and its driver.
# Installed only when missing, and only as root; the tests never download a browser or a driver.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "make browser: /usr/bin/chromium and /usr/bin/chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q chromium chromium-driver; \
	else \
		echo "make browser: chromium or chromedriver is missing; as root run" \
			"'apt-get install chromium chromium-driver' (the browser tests need both)" >&2; \
		exit 1; \
	fi

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

# The long trials, and every Hypothesis property again with ten times the examples.
chaos: install bytecode assert-cache
	$(NO_DONT_WRITE) $(SCRATCH) $(PY) -m pytest -q -m "slow or property" --hypothesis-profile=thorough -n 4 --dist worksteal

clean:
	rm -rf $(VENV) .lf-bulk lf-bulk-reports .pytest_cache .mypy_cache e2e-screens
