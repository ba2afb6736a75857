# The two commands of the README: `make example` and `make test`.
# Each creates the virtual environment and installs everything it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: example test test-cpu test-cuda-sim test-gpu info

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

# the calorimeter clustering job on portable.pipeline, every event validated
example: $(VENV)/.installed
	$(PY) examples/calo_pipeline.py --validation --maxEvents 500 --numberOfThreads 2 --numberOfStreams 2

test: test-cpu test-cuda-sim

# every test, on the CPU backends (and on a GPU if one is present)
test-cpu: $(VENV)/.installed
	$(PY) -m pytest -q --doctest-modules tests portable kernels ml

# the CUDA backend's tests again, in Numba's CUDA simulator (its own process)
test-cuda-sim: $(VENV)/.installed
	NUMBA_ENABLE_CUDASIM=1 PORTABLE_TEST_BACKENDS=cuda $(PY) -m pytest -q -k cuda-sim

# on a machine with an NVIDIA GPU
test-gpu: $(VENV)/.installed
	$(PY) -m pytest -q -m gpu

info: $(VENV)/.installed
	$(PY) -m portable
