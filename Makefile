# The two commands of the README:
#     make demo    the whole pipeline on the `demo` preset, locally (no cluster needed)
#     make test    the test suite
# Both first install what is missing into the current Python environment: the CPU build of torch
# where no NVIDIA GPU is present (a bare `torch` requirement would pull a multi-GB CUDA build),
# then requirements.txt.
PYTHON ?= python3
TORCH_CPU ?= torch==2.13.0

.PHONY: install demo test

install:
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
		echo "no GPU: installing the CPU build $(TORCH_CPU)"; \
		PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q $(TORCH_CPU); \
	fi
	@PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q -r requirements.txt

demo: install
	$(PYTHON) run_pipeline.py

test: install
	$(PYTHON) -m pytest -q
