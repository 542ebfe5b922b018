# Two commands on a fresh machine: `make demo` and `make test`.
# Everything they need is set up here: system packages, .venv, pinned dependencies.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
# Mesa's EGL + software (llvmpipe) OpenGL for headless rendering.
APT_PKGS := libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri

.PHONY: all setup sysdeps demo test test-fast lint bench clean

all: test

sysdeps:
	@# EGL through Mesa's software renderer for headless MuJoCo rendering.
	@if ! dpkg -s $(APT_PKGS) >/dev/null 2>&1; then \
		echo "installing $(APT_PKGS) (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	fi

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory sysdeps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# The CPU wheel first: an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	@# The minari extra too, so the export/import round-trip tests run (registry packages only).
	$(BIN)/pip install -q -e ".[dev,minari]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/laom demo --out demo_out

test: $(STAMP)
	$(BIN)/ruff check laom tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check laom tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/env_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .import_linter_cache
