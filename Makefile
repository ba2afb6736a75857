# The two commands of the README: `make example` and `make test`.
# Each creates the virtual environment and installs everything it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# the Triton server's own environment (ml.service): the server's python backend
# needs NumPy < 2; served models that need torch import the project's
TRITON_VENV ?= .venv-triton

.PHONY: example test test-cpu test-cuda-sim test-gpu info typecheck .venv-triton

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench,service,rocm]"
	touch $@

$(TRITON_VENV)/.installed:
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q --no-deps nvidia-pytriton==0.7.0 "numpy<2"
	touch $@

.venv-triton: $(TRITON_VENV)/.installed

# the calorimeter clustering job on portable.pipeline, every event validated
example: $(VENV)/.installed
	$(PY) examples/calo_pipeline.py --validation --maxEvents 500 --numberOfThreads 2 --numberOfStreams 2

test: test-cpu test-cuda-sim

# every test, on the CPU backends (and on a GPU if one is present)
test-cpu: $(VENV)/.installed $(TRITON_VENV)/.installed
	$(PY) -m pytest -q --doctest-modules tests portable kernels ml

# the CUDA backend's tests again, in Numba's CUDA simulator (its own process)
test-cuda-sim: $(VENV)/.installed
	NUMBA_ENABLE_CUDASIM=1 PORTABLE_TEST_BACKENDS=cuda $(PY) -m pytest -q -k cuda-sim

# on a machine with an NVIDIA GPU
test-gpu: $(VENV)/.installed
	$(PY) -m pytest -q -m gpu

# portable/ type-checks clean with mypy (settings in pyproject.toml)
typecheck: $(VENV)/.installed
	$(PY) -m pip install -q mypy
	$(PY) -m mypy portable

info: $(VENV)/.installed
	$(PY) -m portable
