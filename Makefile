# `make test` and `make demo` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARCH := $(shell uname -m)

.PHONY: test demo venv lint clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "error: $(PYTHON) cannot create a venv: sudo apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# On x86 dev machines take the CPU torch build first, or pip pulls a multi-GB CUDA build.
	if [ "$(ARCH)" = "x86_64" ]; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[test,quantize,realsense,profile]'
	touch $@

venv: $(VENV)/.installed

# The venv's bin/ first on PATH: tools the test extra brings (shellcheck) are found there.
test: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

demo: $(VENV)/.installed
	$(VENV)/bin/tinyvla-edge demo

lint: $(VENV)/.installed
	$(VENV)/bin/shellcheck jetson_setup.sh .ci/run .ci/first_contact.sh

clean:
	rm -rf $(VENV) build *.egg-info
