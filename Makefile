# tfprune: `make demo` and `make test` work on a fresh Debian machine.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
FMNIST  := /usr/share/datasets/fashion-mnist
# Keep the 2-core CI machine responsive: TF's own thread pools.
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Tests run on both cores (pytest-xdist); `make test N=0` runs them in one process.
N       ?= 2
XDIST   := $(if $(filter 0,$(N)),,-n $(N) --dist loadgroup) --durations=25

.PHONY: setup data demo lint docs test test-tf test-jax test-slow test-all bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,jax,detection,export,hub]'
	touch $(STAMP)

setup: $(STAMP) data

# Real Fashion-MNIST from Debian's dataset-fashion-mnist (installed when
# missing and we are root with apt); tfprune also reads the Keras cache.
data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	     (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)); \
	  else \
	    echo "note: $(FMNIST) missing and apt unavailable; tfprune will try the Keras cache"; \
	  fi; \
	fi

# TF_CPP_MIN_LOG_LEVEL=3: the output starts with tfprune's first line (level 2,
# exported above for the tests, lets TensorFlow print a cuInit error first).
demo: setup
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/tfprune prune --model lenet5 --data fashion_mnist --method magnitude \
	  --sparsity 0.9 --quantize int8 --out runs/demo --overwrite

test: lint docs test-tf test-jax

# Style and the import rules (setup.cfg: the layered contract).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# The site (mkdocs + material + mkdocstrings): API reference from the
# docstrings; --strict fails on a broken link or an unresolvable reference.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test-tf: setup
	$(PY) -m pytest -q $(XDIST)

# The backend-agnostic core again under JAX (TF-only tests are skipped).
test-jax: setup
	KERAS_BACKEND=jax $(PY) -m pytest -q $(XDIST) -m "not slow and not tf_only"

# The slow tests, on both backends (CI runs them after `make test`).
test-slow: setup
	$(PY) -m pytest -q $(XDIST) -m slow
	KERAS_BACKEND=jax $(PY) -m pytest -q $(XDIST) -m "slow and not tf_only"

# Everything CI runs: lint, docs, the default suite on both backends, then the slow tests.
test-all: test test-slow

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/magnitude_vs_tfmot.py

clean:
	rm -rf $(VENV) runs site *.egg-info
