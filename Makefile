# Two entry points do all set-up on a fresh Debian machine (root, Python 3.11):
#   make demo   runs the pipeline on the embedded synthetic default
#   make test   runs the test suite
SHELL := /bin/bash
VENV := .venv
# Rules call `hpcdl`, so the virtualenv's bin comes first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
PY := $(VENV)/bin/python
# Fresh machines and containers run as root; Open MPI's mpirun refuses root unless told.
ifeq ($(shell id -u),0)
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
endif
# buildah (with crun, the runtime it was verified with) and debootstrap build the image for
# tests/test_image.py (containers/build-cpu-base.sh).
APT_PACKAGES := openmpi-bin libopenmpi-dev nginx-light slurm-wlm munge chromium buildah crun debootstrap dataset-fashion-mnist
CORES ?= 2

.PHONY: demo test test-fast deps venv classify mixup segment

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml | deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: deps $(VENV)/.installed

demo: venv
	$(VENV)/bin/snakemake --profile profiles/local --cores $(CORES)

# The classify workload on the embedded Fashion-MNIST, and its MixUp comparison (README).
classify: venv
	$(VENV)/bin/snakemake --profile profiles/local --cores $(CORES) --configfile config/classify.yaml

mixup: venv
	$(VENV)/bin/snakemake experiments --profile profiles/local --cores $(CORES) --configfile config/classify.yaml config/experiments/mixup.yaml

# The segment workload (UNet, IoU target) on the embedded synthetic microscopy (README).
segment: venv
	$(VENV)/bin/snakemake --profile profiles/local --cores $(CORES) --configfile config/segment.yaml

# The whole suite, with its 25 slowest tests at the end so that growth shows in every log.
test: venv
	$(VENV)/bin/python -m pytest -q --durations=25 tests

# The edit loop: no SLURM cluster, image build, browser or long pipeline (CONTRIBUTING.md).
test-fast: venv
	$(VENV)/bin/python -m pytest -q --durations=10 -m "not slurm and not container and not browser and not slow" tests
