# Two commands for a new user:  `make repro`  and  `make test`.
# Both create .venv and install the pinned requirements first (only when requirements.lock changes).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: make it the project's interpreter.
export PATH := $(abspath $(BIN)):$(PATH)
# Values a user or a workflow passes (make checkout REV=..., make predict MODEL=...) reach the recipes as
# environment variables, quoted there ("$$REV", $${VERSION:+...}): never pasted into the shell's text, where
# `;`, spaces or $(...) would run, and never expanded by make itself (so set from the environment they stay inert).
export BASE REV MODEL INPUT OUTPUT VERSION STAGE ARTIFACT_URL REVS BEYOND_HISTORY OUTCOMES SCORED_AT ADDED_AT DEGRADE KEEP DROP

.PHONY: help setup params check-params repro check-lock ci-remote ci-repro report checkout register promote predict score-batch add-labels simulate-production verify-cache repair-cache pr-comment push drift-gate monitor-gate test test-fast lint dag metrics exps plots lock clean
BASE ?= main

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

$(STAMP): requirements.lock
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 not found; install it or pass PYTHON=/path/to/python3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: $(PYTHON) is not Python 3.11; pass PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	@# --no-deps: requirements.lock pins every package, so pip resolves nothing (pip check proves the set complete);
	@# --no-compile, then compileall on every core: byte-compiling the packages is half the install's CPU, and pip does it on one.
	@# No --quiet: pip says each package it collects and installs (a first install takes minutes).
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps --no-compile -r requirements.lock
	$(BIN)/python -m pip check --disable-pip-version-check
	@echo "byte-compiling the installed packages on every core (a minute or two)"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib
	@touch $@

setup: $(STAMP)  ## create .venv with the pinned requirements

params: setup  ## compose conf/ into params.yaml (as `dvc exp run` does)
	$(BIN)/python -m commands.compose

check-params: setup  ## fail if params.yaml differs from the composition of conf/
	$(BIN)/python -m commands.compose --check

repro: params  ## set up, compose params and run the pipeline (only what changed)
	$(BIN)/dvc repro
	@echo; echo "Metrics (reports/metrics.json):"; $(BIN)/dvc metrics show reports/metrics.json

check-lock: repro  ## fail if `dvc repro` changed dvc.lock: the committed pipeline must be up to date
	@git diff --exit-code --stat -- dvc.lock || { echo "error: dvc.lock changed after dvc repro: run make repro and commit dvc.lock" >&2; exit 1; }

ci-remote: setup  ## CI: make DVC_REMOTE_URL (+ DVC_REMOTE_ENDPOINT_URL) the default remote, in .dvc/config.local
	$(BIN)/python .ci/remote.py configure

ci-repro: params  ## CI: pull what the DVC remote really holds, run the rest, log to reports/pr/ (remote optional)
	.ci/repro

report: setup  ## Markdown report of this workspace against BASE (default main): make report BASE=<rev> [ARTIFACT_URL=<url>]
	$(BIN)/python -m commands.report --base "$$BASE" $(if $(wildcard reports/pr/repro.log),--repro-log reports/pr/repro.log) $${ARTIFACT_URL:+--artifact-url "$$ARTIFACT_URL"}

checkout: setup  ## restore code, data, features, model and metrics of a revision: make checkout REV=<tag, branch or sha>
	@test -n "$$REV" || { echo "error: say which revision: make checkout REV=<tag, branch or sha>" >&2; exit 2; }
	@git rev-parse --verify --quiet --end-of-options "$$REV^{commit}" >/dev/null || { echo "error: REV=$$REV is not a tag, branch or commit of this repository (see git tag, git branch -a)" >&2; exit 2; }
	@# dvc checkout --force would delete batches or outcomes appended since dvc.lock last recorded the store.
	@# No --quiet on dvc: it would hide DVC's own error (make then says only "Error 255"); its stdout lists every file.
	@if [ -d data/production ]; then \
	  changes=$$($(BIN)/dvc status --json production-store) || { echo "error: \`dvc status production-store\` failed (DVC's message above)" >&2; exit 2; }; \
	  if [ "$$changes" != "{}" ]; then echo "error: data/production holds batches or outcomes dvc.lock does not record yet (a checkout would delete them); run make repro and commit dvc.lock first" >&2; exit 2; fi; \
	fi
	@previous=$$(git symbolic-ref --quiet --short HEAD); \
	echo "git checkout $$REV && dvc checkout --force"; \
	git checkout --quiet "$$REV" -- || exit 2; \
	$(BIN)/dvc checkout --force >/dev/null || { echo "error: git is at $$REV but \`dvc checkout --force\` failed (DVC's message above): its data is not in the cache; \`dvc pull\` fetches it from the remote, then run make checkout REV=$$REV again" >&2; exit 2; }; \
	echo "workspace at $$REV ($$(git rev-parse --short HEAD)): code, params, data, features, model and metrics"; \
	if ! git symbolic-ref --quiet HEAD >/dev/null; then echo "note: detached HEAD at $$REV (on no branch: commit nothing here); go back with make checkout REV=$${previous:-main}"; fi

register: setup  ## register the committed model as a new version (a GTO git tag): make register [VERSION=v1.0.0]
	$(BIN)/gto register model HEAD $${VERSION:+--version "$$VERSION"}

promote: setup  ## assign a stage to a model version: make promote STAGE=prod [VERSION=v1.0.0] (default: the latest)
	@test -n "$$STAGE" || { echo "error: say which stage: make promote STAGE=prod [VERSION=v1.0.0]" >&2; exit 2; }
	$(BIN)/gto assign model $${VERSION:+--version} "$${VERSION:-HEAD}" --stage "$$STAGE"

predict: setup  ## score a file with a registered model: make predict MODEL=model@v1.0.0 INPUT=rows.csv OUTPUT=scores.csv [OUTCOMES="a.csv b.csv"] [BEYOND_HISTORY=1]
	@missing=; for name in MODEL INPUT OUTPUT; do [ -n "$${!name}" ] || missing+=" $$name"; done; \
	if [ -n "$$missing" ]; then \
	  echo "usage: make predict MODEL=model@v0.0.1|model#prod|workspace INPUT=rows.csv OUTPUT=scores.csv (missing:$$missing)" >&2; \
	  echo "  an input to try, 100 rows of the test split: $(BIN)/python -c \"import pandas as pd; pd.read_parquet('data/prepared/test.parquet').head(100).to_csv('rows.csv', index=False)\"" >&2; \
	  exit 2; \
	fi
	@set -f; outcomes=(); for file in $$OUTCOMES; do outcomes+=(--outcomes "$$file"); done; \
	$(BIN)/python -m commands.predict --model "$$MODEL" --input "$$INPUT" --output "$$OUTPUT" "$${outcomes[@]}" $${BEYOND_HISTORY:+--score-beyond-history}

score-batch: setup  ## score rows into the production store: make score-batch INPUT=rows.csv [MODEL=workspace|model@v1.0.0] [SCORED_AT=iso] [BEYOND_HISTORY=1]
	@test -n "$$INPUT" || { echo "error: say which rows: make score-batch INPUT=rows.csv" >&2; exit 2; }
	$(BIN)/python -m commands.score_batch --input "$$INPUT" --model "$${MODEL:-workspace}" $${SCORED_AT:+--scored-at "$$SCORED_AT"} $${BEYOND_HISTORY:+--score-beyond-history}

add-labels: setup  ## add outcomes of stored rows to the production store: make add-labels INPUT=outcomes.csv [ADDED_AT=iso]
	@test -n "$$INPUT" || { echo "error: say which outcomes: make add-labels INPUT=outcomes.csv" >&2; exit 2; }
	$(BIN)/python -m commands.add_labels --input "$$INPUT" $${ADDED_AT:+--added-at "$$ADDED_AT"}

simulate-production: setup  ## replay the data after the splits as weekly batches into the production store [DEGRADE=1]
	$(BIN)/python -m commands.simulate_production $${DEGRADE:+--degrade}

verify-cache: setup  ## check every DVC cache object against its hash (exit 1 if any is corrupted)
	$(BIN)/python -m commands.verify_cache

repair-cache: setup  ## remove corrupted cache objects, fetch them again from the remote, restore the workspace
	$(BIN)/python -m commands.verify_cache --repair

pr-comment:  ## CI: post or update the one pull-request comment holding reports/pr/report.md
	.ci/pr-comment reports/pr/report.md

push: setup  ## push data, models and the run cache to the default DVC remote (in CI: refuses a local folder)
	$(BIN)/python .ci/remote.py check-publish
	$(BIN)/dvc push --run-cache

drift-gate: setup  ## exit non-zero when the last drift check failed its gate (thresholds in conf/drift/)
	$(BIN)/python -m commands.drift_gate

monitor-gate: setup  ## exit non-zero when the newest judged chunk of the monitor alerts or cannot be decided (bounds in conf/monitor/)
	$(BIN)/python -m commands.monitor_gate

test: setup  ## set up (with the system packages tests use) and run every test
	.ci/system-deps
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder

test-fast: setup  ## unit tests only (skips the slow end-to-end runs)
	$(BIN)/python -m pytest -m "not slow"

lint: setup  ## run every pre-commit hook on all files
	$(BIN)/pre-commit run --all-files

dag: setup  ## draw the pipeline
	$(BIN)/dvc dag

metrics: setup  ## metrics of the workspace against HEAD
	@# dvc metrics diff prints nothing when nothing changed: say so rather than leave a blank.
	@changes=$$($(BIN)/dvc metrics diff) || exit 2; \
	if [ -n "$$changes" ]; then echo "$$changes"; else echo "metrics: no change between the workspace and HEAD (\`dvc metrics show\` prints the values; \`dvc metrics diff <rev>\` compares with another revision)"; fi

exps: setup  ## experiments: main metrics and the params that differ, [KEEP=regex] columns added, [DROP=regex] removed
	$(BIN)/python -m commands.exps $${KEEP:+--keep "$$KEEP"} $${DROP:+--drop "$$DROP"}

plots: setup  ## draw the plots of the workspace against HEAD (or REVS="main v1") to dvc_plots/index.html, offline
	@read -r -a revs <<< "$$REVS"; set -x; $(BIN)/python -m commands.plots "$${revs[@]}"

lock:  ## re-pin requirements.lock from pyproject.toml in a scratch venv (and the estimator table from its scikit-learn)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check '.[dev]'
	{ echo '# Pinned versions of everything `make setup` installs (pipeline, tests, lint) for Python 3.11.'; \
	  echo '# Edit pyproject.toml, then regenerate with `make lock`.'; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^flight-delay-mlops' | sort -f; } > requirements.lock
	.lock-venv/bin/python -m commands.estimators
	rm -rf .lock-venv

clean:  ## remove the virtual environment
	rm -rf $(VENV)
