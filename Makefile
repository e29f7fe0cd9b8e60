# `make demo` and `make test` each create the virtual environment they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/perfsim: pyproject.toml
	@echo "perfsim: creating the virtual environment $(VENV) (once; make reuses it)"
	$(PYTHON) -m venv $(VENV)
	@echo "perfsim: upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "perfsim: installing perfsim and its dependencies (numpy, pandas, matplotlib, pydantic, simpy, pyyaml)," \
		"its extras (pyarrow, dask, starlette, uvicorn) and the dev tools (pytest, hypothesis, ruff, mkdocs, selenium);" \
		"about a minute on a fresh machine"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@echo "perfsim: ready: $(BIN)/perfsim"
	touch $@

.PHONY: demo test lint docs bench wheel-check
demo: $(BIN)/perfsim
	$(BIN)/perfsim estimate --hardware h100-sxm --op "gemm m=4096 n=4096 k=4096 dtype=bf16"
	$(BIN)/perfsim roofline --hardware h100-sxm --compare mi300x \
		--op "gemm m=4096 n=4096 k=4096 name=gemm-4096" --op "gemm m=1 n=4096 k=4096 name=gemv" \
		--op "attention heads=32 kv_heads=8 q_len=1 kv_len=4096 name=gqa-decode" -o roofline.png

test: $(BIN)/perfsim
	$(BIN)/ruff check perfsim tests
	$(BIN)/python -m pytest
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

bench: $(BIN)/perfsim
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable -p no:randomly

# Build the sdist and the wheel, install the wheel into a clean venv and run the smoke commands outside the checkout.
wheel-check: $(BIN)/perfsim
	.ci/wheel-check $(BIN)/python
