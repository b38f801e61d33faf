# The two commands of the README:
#     make demo    the whole pipeline on the `demo` preset, locally (no cluster needed)
#     make test    the test suite, as CI runs it
# The interpreter: PYTHON=... when given; else, inside an activated virtual environment or conda
# environment (VIRTUAL_ENV, CONDA_PREFIX), its python3; else the project's own virtual environment
# .venv, made on first use with BASE_PYTHON -m venv (default python3; a system Python that refuses
# pip installs, PEP 668, is fine). Both commands first install what is missing into that
# interpreter: the CPU build of torch where no NVIDIA GPU is present (a bare `torch` requirement
# would pull a multi-GB CUDA build), then requirements.txt; `make test` also the optional readers
# of correlator files (requirements-formats.txt) and the peers' packages (requirements-peers.txt),
# so that no format or peer test is skipped.
#     make docs    the manual, built into site/ (mkdocs build --strict; requirements-docs.txt)
#     make lint    ruff check . (requirements-lint.txt; rules and line length in pyproject.toml)
#     make venv    only make .venv (where the interpreter is the project's own)
BASE_PYTHON ?= python3
VENV ?= .venv
TORCH_CPU ?= torch==2.13.0

ifeq ($(strip $(PYTHON)),)
  ifneq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)),)
    PYTHON := python3
  else
    PYTHON := $(VENV)/bin/python
    MAKE_VENV := $(VENV)/bin/python
  endif
endif
PIP := PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q

.PHONY: install install-formats demo test docs lint venv

venv: | $(MAKE_VENV)

# made once; a failed attempt (Debian/Ubuntu without python3-venv: no ensurepip) leaves nothing
$(VENV)/bin/python:
	@echo "making the virtual environment $(VENV) with $(BASE_PYTHON) -m venv"
	@$(BASE_PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); \
		echo "error: '$(BASE_PYTHON) -m venv $(VENV)' failed: install the venv module (Debian/Ubuntu:" \
		     "apt install python3-venv), or activate an environment of your own, or give PYTHON=..." >&2; \
		exit 1; }

install: | $(MAKE_VENV)
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
		echo "no GPU: installing the CPU build $(TORCH_CPU) into $(PYTHON)"; \
		$(PIP) $(TORCH_CPU); \
	fi
	@$(PIP) -r requirements.txt

install-formats: install
	@$(PIP) -r requirements-formats.txt -r requirements-peers.txt

demo: install
	$(PYTHON) run_pipeline.py

test: install-formats
	$(PYTHON) -m pytest -q

docs: | $(MAKE_VENV)
	@$(PIP) -r requirements-docs.txt
	$(PYTHON) -m mkdocs build --strict --site-dir site

lint: | $(MAKE_VENV)
	@$(PIP) -r requirements-lint.txt
	$(PYTHON) -m ruff check .
