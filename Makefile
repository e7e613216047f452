# liversynth: `make run` (set-up + whole pipeline on the built-in data) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
DATASET ?= phantom
REAL_SAMPLE_SDIST := data/downloads/totalsegmentator-2.18.0.tar.gz
# DATASET=chaos: the CHAOS_Train_Sets folder (CT/, MR/) of your CHAOS download (README: CHAOS).
CHAOS_DIR ?=
WORKERS ?= 2
# pytest-xdist workers for make test (tests/conftest.py: a module, and the tiny pipeline's users, stay on one).
TEST_WORKERS ?= 2
# The default DVC remote: a folder on this machine, outside the repo (docs/team_setup.md: S3/SSH/GCS).
DVC_REMOTE ?= $(HOME)/.cache/liversynth/dvc-remote
PREFECT_PORT ?= 4200

export PATH := $(BIN):$(PATH)
export PREFECT_HOME ?= $(abspath .prefect)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_LOGGING_LEVEL ?= WARNING
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export TQDM_MININTERVAL ?= 5
# An MLflow server that goes away mid-run: fail in seconds, not after urllib3's ~4 min of back-off
# (a server unreachable at a stage's start fails at once: liversynth.utils.connectivity).
export MLFLOW_HTTP_REQUEST_MAX_RETRIES ?= 2
export MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR ?= 1
export MLFLOW_HTTP_REQUEST_TIMEOUT ?= 30

.PHONY: setup remote data run study test ui prefect-ui dashboard screenshots lock tune bench results clean help

help:
	@echo "make run   - set up .venv, generate the built-in data, run the whole pipeline (dvc repro)"
	@echo "make run DATASET=real-sample - the same on real CT/MRI (TotalSegmentator test files; a smoke run)"
	@echo "make run DATASET=chaos CHAOS_DIR=/path/to/CHAOS_Train_Sets - the paper's protocol on CHAOS (GPU-sized)"
	@echo "make study - the labelled-patient sweep, every arm, all seeds (study/dvc.yaml; reports/study/)"
	@echo "make test  - set up .venv and run the tests"
	@echo "make ui    - MLflow UI on http://127.0.0.1:5000"
	@echo "make prefect-ui - a local Prefect server and UI on http://127.0.0.1:$(PREFECT_PORT) (stays up)"
	@echo "make dashboard  - optuna-dashboard on the tuning study, http://127.0.0.1:8080"
	@echo "make screenshots - PNGs of the MLflow UI (experiment, comparison, model) in reports/ui/"
	@echo "make remote - the default DVC remote, $(DVC_REMOTE) (unless one is set)"
	@echo "make lock  - regenerate requirements.lock from pyproject.toml (pip-compile)"
	@echo "make tune WORKERS=n - n Optuna workers on the shared study"
	@echo "make bench - benchmarks (benchmarks/results/*.json)"
	@echo "make results - rewrite README.md's generated blocks from the committed artifacts"

# Pinned environment from the lock file (torch==2.13.0, CPU build, exactly).
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock 2>&1 | grep -v "is ignored" || true
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch, monai, mlflow, dvc, optuna, great_expectations, prefect, liversynth; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

setup: $(STAMP)

# A default DVC remote that works on one machine, in .dvc/config.local (not committed), only when
# none is configured: a team's remote in .dvc/config (docs/team_setup.md) wins.
remote: setup
	@if [ ! -d .dvc ]; then dvc init --quiet; fi
	@if ! dvc remote default >/dev/null 2>&1; then \
	  mkdir -p "$(DVC_REMOTE)" && dvc remote add --local -d -f local "$(DVC_REMOTE)" && \
	  echo "DVC remote: $(DVC_REMOTE) (dvc push / dvc pull)"; fi

# The built-in dataset, versioned by DVC (same seed -> same data.dvc hash).
# DATASET=phantom runs params.yaml as it is. Another built-in dataset brings params-<DATASET>.yaml,
# copied over params.yaml (DVC tracks params.yaml only), never over uncommitted edits; a later
# plain `make run` restores the committed params.yaml the same way (only an unedited copy: equal to a
# profile or to a committed version of one, as after registering a test split in params-chaos.yaml;
# scripts/is_profile_copy.sh).
# DATASET=chaos checks CHAOS_DIR's layout first, then copies its CT/ and MR/ into data/raw
# (scripts/chaos_raw.sh; DVC cannot version a symlink); any other dataset removes such a copy.
data: setup remote $(if $(filter real-sample,$(DATASET)),$(REAL_SAMPLE_SDIST))
	@if [ ! -d .dvc ]; then dvc init --quiet; fi
	@if [ "$(DATASET)" = chaos ]; then scripts/chaos_raw.sh check "$(CHAOS_DIR)" data/raw; fi
	@if [ "$(DATASET)" = phantom ]; then \
	  for f in params-*.yaml; do \
	    if [ -f "$$f" ] && scripts/is_profile_copy.sh params.yaml "$$f"; then \
	      git checkout -- params.yaml; echo "params.yaml: back to the committed version (was a copy of $$f)"; break; fi; \
	  done; \
	else \
	  src=params-$(DATASET).yaml; \
	  if [ ! -f "$$src" ]; then \
	    echo "unknown DATASET=$(DATASET): no $$src (known: phantom $$(ls params-*.yaml | sed 's/params-//; s/.yaml//' | tr '\n' ' '))"; exit 1; fi; \
	  if ! cmp -s "$$src" params.yaml; then \
	    if ! git diff --quiet -- params.yaml && ! scripts/is_profile_copy.sh params.yaml params-*.yaml; then \
	      echo "params.yaml has uncommitted edits; commit or stash them before DATASET=$(DATASET)"; exit 1; fi; \
	    cp "$$src" params.yaml; echo "params.yaml <- $$src (a plain 'make run' goes back to the phantom)"; \
	  fi; \
	fi
	@if [ "$(DATASET)" = chaos ]; then scripts/chaos_raw.sh copy "$(CHAOS_DIR)" data/raw; \
	else scripts/chaos_raw.sh release data/raw; fi
	python -m scripts.generate_data
	@# New or changed raw data is read in full before `dvc commit` versions it: broken files are
	@# refused by name and never reach the DVC cache, data.dvc or any stage.
	@dvc status --quiet data.dvc 2>/dev/null || python -m scripts.generate_data --check
	scripts/track_raw_data.sh

# real-sample's only download: pip fetches the sdist and checks it against data/real_sample.sha256
# before it prepares the metadata (running the sdist's static setup.py in pip's build sandbox);
# liversynth then only reads files out of the tar, never installing or importing it.
$(REAL_SAMPLE_SDIST): data/real_sample.sha256 | $(STAMP)
	mkdir -p $(@D) && echo '*' > $(@D)/.gitignore
	echo "totalsegmentator==2.18.0 --hash=sha256:$$(cut -d' ' -f1 $<)" > $(@D)/requirements.txt
	pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: --require-hashes \
	  -r $(@D)/requirements.txt -d $(@D) 2>&1 | { grep -v "is ignored" || true; }
	touch $@

# One pipeline id for the whole repro: its stage runs nest under one MLflow pipeline run, which starts
# when the repro starts (LIVERSYNTH_PIPELINE_START) and ends when it ends (scripts.results --record-run).
run: data
	python -m liversynth.config params.yaml  # a bad value fails here, in seconds, naming the key
	export LIVERSYNTH_PIPELINE_START=$$(date +%s.%N); start=$$LIVERSYNTH_PIPELINE_START; \
	  export LIVERSYNTH_PIPELINE_ID=$${LIVERSYNTH_PIPELINE_ID:-make-$$(date -u +%Y%m%dT%H%M%SZ)-$$$$}; \
	  scripts/with_prefect_api.sh dvc repro; python -m scripts.results --record-run $$start
	dvc metrics show
	dvc push --quiet || echo "dvc push failed: the outputs are only in this workspace's cache"
	@echo "MLflow UI: make ui    |    champion: see reports/registry.json"
	@echo "champion on a held-out test volume: reports/figures/segment_demo.png (liversynth segment: README, Using the champion)"

# The study (study/dvc.yaml): every arm at each of study.labelled_patients labelled patients, on the
# default run's generators and tuning (run first if they are not up to date); reports/study/.
study: data
	python -m liversynth.config params.yaml
	export LIVERSYNTH_PIPELINE_START=$$(date +%s.%N); start=$$LIVERSYNTH_PIPELINE_START; \
	  export LIVERSYNTH_PIPELINE_ID=$${LIVERSYNTH_PIPELINE_ID:-study-$$(date -u +%Y%m%dT%H%M%SZ)-$$$$}; \
	  scripts/with_prefect_api.sh dvc repro study/dvc.yaml; python -m scripts.results --record-study $$start
	dvc metrics show reports/study/metrics.json
	dvc push --quiet || echo "dvc push failed: the outputs are only in this workspace's cache"

# The real TotalSegmentator test scans (hash-checked sdist) feed the CHAOS-layout fixture test.
test: setup $(REAL_SAMPLE_SDIST)
	mypy
	python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder tests

ui: setup
	mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port 5000

# A Prefect server that stays up; point runs at it with
#   export PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api
prefect-ui: setup
	prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# optuna-dashboard on the tuning study's storage (params.yaml -> tune.storage).
dashboard: setup
	optuna-dashboard --host 127.0.0.1 --port 8080 \
	  "$$(python -c 'import yaml; s = yaml.safe_load(open("params.yaml"))["tune"]["storage"]; print(s)')"

# Headless Chromium shots of the MLflow UI on the local store (apt-get install chromium).
screenshots: setup
	python scripts/screenshots.py --out reports/ui

# requirements.lock from pyproject.toml's dependencies and [dev] extra, torch pinned to the CPU build.
lock: setup
	scripts/lock.sh

# WORKERS worker processes (a local Dask cluster) pop trials off one shared Optuna study; the stage
# then writes reports/tune.json once. LIVERSYNTH_TASK_RUNNER=processes|threads picks another engine,
# LIVERSYNTH_DASK_ADDRESS=tcp://host:8786 an existing Dask cluster (README: Performance and scale-out).
# Up to date means nothing to do; `dvc repro -f -s tuning` reruns it, reusing completed trials.
tune: setup
	LIVERSYNTH_WORKERS=$(WORKERS) scripts/with_prefect_api.sh dvc repro tuning

# Throughput of each hot path against a plain baseline, peak RSS, end-to-end and no-op dvc repro
# (about 10 min on 2 cores); results in benchmarks/results/. BENCH_ARGS="--no-e2e" etc.
bench: setup
	python -m benchmarks.run $(BENCH_ARGS)

# README.md's generated blocks (results, benchmarks) from metrics.json, reports/ and benchmarks/results/.
results: setup
	python -m scripts.results

clean:
	rm -rf data/prepared data/synthetic models reports metrics.json .checkpoints
