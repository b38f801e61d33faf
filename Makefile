# The two commands of the README:
#     make demo    the whole pipeline on the `demo` preset, locally (no cluster needed)
#     make test    the test suite, as CI runs it
# Both first install what is missing into the current Python environment: the CPU build of torch
# where no NVIDIA GPU is present (a bare `torch` requirement would pull a multi-GB CUDA build),
# then requirements.txt; `make test` also the optional readers of correlator files
# (requirements-formats.txt) and the peers' packages (requirements-peers.txt), so that no format or
# peer test is skipped.
#     make docs    the manual, built into site/ (mkdocs build --strict; requirements-docs.txt)
#     make lint    ruff check . (requirements-lint.txt; rules and line length in pyproject.toml)
PYTHON ?= python3
TORCH_CPU ?= torch==2.13.0

.PHONY: install install-formats demo test docs lint

install:
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
		echo "no GPU: installing the CPU build $(TORCH_CPU)"; \
		PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q $(TORCH_CPU); \
	fi
	@PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q -r requirements.txt

install-formats: install
	@PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q -r requirements-formats.txt -r requirements-peers.txt

demo: install
	$(PYTHON) run_pipeline.py

test: install-formats
	$(PYTHON) -m pytest -q

docs:
	@PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q -r requirements-docs.txt
	$(PYTHON) -m mkdocs build --strict --site-dir site

lint:
	@PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q -r requirements-lint.txt
	$(PYTHON) -m ruff check .
