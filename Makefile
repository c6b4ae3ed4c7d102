# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv from the pins
# first; a stamp named after the hash of the pin files makes a second run install nothing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIN_HASH := $(shell cat constraints.txt requirements.lock pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(PIN_HASH)

.PHONY: venv test test-slow lint typecheck demo finetune bench-unitary bench-step bench-accuracy clean

venv: $(STAMP)

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet -c constraints.txt -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy over the typed surface named in pyproject.toml ([tool.mypy] files).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

# One BLAS/OpenMP thread per test process: the suite is many small tensors, for which a
# thread pool costs more than it gives (and far more when the machine is busy).
test: lint typecheck
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(VENV)/bin/qadapters demo

# LoRA vs circuit adapters on MiniLM + WordNet glosses, small enough for a few minutes on 2 cores.
finetune: $(STAMP)
	test -f /usr/share/wordnet/data.noun || apt-get install -y wordnet-base || (apt-get update && apt-get install -y wordnet-base)
	HF_HUB_OFFLINE=1 $(PY) examples/finetune_text.py --max-steps 60 --per-class 100 --eval-every 20

bench-unitary: $(STAMP)
	$(PY) -m benchmarks.unitary

bench-step: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.step_time

# Accuracy vs trainable parameters (Pareto front) of LoRA, every family, head only and full
# fine-tuning on the MNIST MLP and MiniLM, at default rates and over a 10x rate sweep.
bench-accuracy: $(STAMP)
	test -f /usr/share/wordnet/data.noun || apt-get install -y wordnet-base || (apt-get update && apt-get install -y wordnet-base)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.accuracy

clean:
	rm -rf $(VENV) build *.egg-info
