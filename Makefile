# Two commands do all the setup on a fresh machine with Python 3.11 and pip:
#   make demo   build .venv from the pinned lock, then run the main job
#   make test   build .venv from the pinned lock, then run every quality gate and test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zcbench-installed

.PHONY: setup browser-deps demo archive-demo archive-verify-demo test test-fast test-browser lint typecheck pytest bench lock clean

setup: $(STAMP)

# The lock carries a hash for every distribution: pip refuses anything else.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: setup
	$(VENV)/bin/zcbench demo

# The demo run's records in a WORM bucket on a SeaweedFS server on loopback (started here and
# stopped when done; its data, identity and port kept in demo-out/s3), read back by VersionId,
# then the run's evidence pack. The previous demo's archive (manifest and server data) is
# dropped first. 'make archive-verify-demo' starts the same server again and reads it back.
archive-demo: setup
	test -f demo-out/run/summary.json || $(VENV)/bin/zcbench demo
	rm -rf demo-out/evidence demo-out/run/archive.json demo-out/s3
	$(PY) tests/_seaweed.py --keep demo-out/s3 -- bash -c '$(VENV)/bin/zcbench archive demo-out/run --s3 "$$ZCBENCH_S3" --bucket zcbench-demo --retain-days 1827 && $(VENV)/bin/zcbench archive verify demo-out/run --s3 "$$ZCBENCH_S3" --bucket zcbench-demo && $(VENV)/bin/zcbench evidence demo-out/run --out demo-out/evidence --trust dev'
	@echo "The demo's S3 server has stopped, so the 'archive verify' command above (and the pack's) needs it running again with its credentials: 'make archive-verify-demo' does both (data, identity and port are kept in demo-out/s3)."

archive-verify-demo: setup
	@test -f demo-out/run/archive.json -a -f demo-out/s3/s3.json || { echo "no archive of the demo run here: run 'make archive-demo' first"; exit 2; }
	$(PY) tests/_seaweed.py --keep demo-out/s3 -- bash -c '$(VENV)/bin/zcbench archive verify demo-out/run --s3 "$$ZCBENCH_S3" --bucket zcbench-demo'

lint: setup
	$(VENV)/bin/ruff check zcbench tests bench tools

typecheck: setup
	$(VENV)/bin/mypy

# Debian's Chromium for the browser tests; Playwright drives it, never a downloaded browser build.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests (about a minute, once)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Compiled modules are cached (__pycache__, ignored by git) even where the environment turns that
# off: otherwise every test process and every process a test starts compiles zcbench and rewrites
# each test module's asserts again (about 7 s of CPU per process).
pytest test-fast test-browser: export PYTHONDONTWRITEBYTECODE :=

# Everything but the browser tests on both cores, then the browser tests on their own (each
# starts a Jupyter server and a Chromium, which would crowd the parallel workers).
pytest: setup browser-deps
	$(PY) -m pytest -n 2 -m "not browser"
	$(PY) -m pytest -m browser

# The edit loop (meant to take under a minute on two cores): everything but the slow tests (many processes,
# images, live runs, large or many-example inputs; each kind keeps a representative here) and
# the browser tests.
test-fast: setup
	$(PY) -m pytest -n 2 -q -m "not slow and not browser"

test-browser: setup browser-deps
	$(PY) -m pytest -m browser

test: lint typecheck pytest

bench: setup
	$(PY) bench/run_all.py

# Maintainers only: regenerate the lock (needs uv on PATH and the network).
# rfc3987-syntax (and lark, its only user) stay out: jsonschema's IRI format checker, which no
# notebook or Jupyter schema uses, builds about 35 Earley parsers when jsonschema is imported, so
# every process that imports nbformat paid 1-5 s for it (jsonschema issue #1428); without it
# jsonschema leaves the IRI formats unchecked.
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 --no-emit-package rfc3987-syntax --no-emit-package lark -o requirements.lock
	$(PY) tools/sync_environment.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
