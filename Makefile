# pccompiler developer tasks.  `make` alone lists them.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
# Benchmark entry point: the compile-time benchmark runs on any machine
# (override: make bench BENCH=bench/race.py BENCH_ARGS=...; bench/README.md lists them)
BENCH ?= bench/compile_bench.py
BENCH_ARGS ?= --cases hclt-32,pd-32 --out build/bench/compile.md

# Triton kernels run in the CPU interpreter unless a GPU run overrides it
# (make test TRITON_INTERPRET=0).
export TRITON_INTERPRET ?= 1

.DEFAULT_GOAL := help
.PHONY: help setup test main proto bench clean distclean

help:  ## list the targets
	@echo "pccompiler make targets:"
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):.*## (.*)/  \1\t\2/' | expand -t 14

setup:  ## create .venv and install pccompiler -e '.[dev]' (scripts/setup.sh; fast if done)
	@bash scripts/setup.sh

test: setup  ## run the test suite (TRITON_INTERPRET=1: Triton on CPU)
	$(PY) -m pytest -q --durations=15 tests --backend torch,triton

main: setup  ## run the main job (python examples/main_job.py)
	$(PY) examples/main_job.py

proto: setup  ## regenerate ir/*_pb2.py(i) from ir/*.proto (protoc 29.0 of grpcio-tools 1.70.0)
	$(PY) -m grpc_tools.protoc -I ir --python_out=ir --pyi_out=ir $(wildcard ir/*.proto)
	@# protoc writes `import foo_pb2 as ...` for imported .proto files; make
	@# those imports package-relative so they resolve inside pccompiler.ir.
	find ir -maxdepth 1 -name '*_pb2.py*' -exec sed -i -E 's/^import ([A-Za-z0-9_]+_pb2) as /from . import \1 as /' {} +

bench: setup  ## run a benchmark (default bench/compile_bench.py; BENCH=... to change)
	$(PY) $(BENCH) $(BENCH_ARGS)

clean:  ## remove build outputs and caches (keeps .venv and .whl)
	rm -rf build dist .eggs .pytest_cache .hypothesis *.egg-info
	rm -f bench/results/*.tmp
	find . -path ./.venv -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf

distclean: clean  ## clean, and remove .venv too
	rm -rf $(VENV)
