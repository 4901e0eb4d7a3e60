# make setup | make demo | make test | make synth | make deploy | make destroy | make bench
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# checkov pins a boto3 that conflicts with requirements-dev.txt: it gets a venv of its own.
SCAN_VENV := .venv-scan
# Label Studio (the Label Studio backend's tests and demo) conflicts with requirements-dev.txt too, and is ~1 GB.
LS_VENV := .venv-label-studio
# Context for synth, deploy and destroy, e.g. CONTEXT="-c labeling.backend=label-studio" (cdk.json holds the rest).
CONTEXT ?=
CDK := npx --no-install cdk --no-notices $(CONTEXT)
# jsii prints an end-of-life banner on Node 18 and 20 (Debian 12 ships 18; aws-cdk 2.1148 still supports
# it); the CDK docs name this variable to silence it for the Node that runs. Telemetry lookups are off:
# they are slow and pointless offline.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := $(shell node -p "process.versions.node.split('.')[0]" 2>/dev/null)
export CDK_DISABLE_CLI_TELEMETRY := true
# npm's "new version available" notice is a registry lookup and noise in every build.
export NPM_CONFIG_UPDATE_NOTIFIER := false

.PHONY: setup browser demo test lint synth deploy destroy bench clean

setup: $(VENV)/.installed $(SCAN_VENV)/.installed $(LS_VENV)/.installed node_modules/.installed browser

# The browser tests drive a system Chromium: found, or installed with apt-get when run as root on
# Debian/Ubuntu; elsewhere one line says what to install (scripts/browser.py).
browser:
	@python3 scripts/browser.py --install

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(SCAN_VENV)/.installed: requirements-scan.txt
	python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/python -m pip install --quiet -r requirements-scan.txt
	touch $@

$(LS_VENV)/.installed: requirements-label-studio.txt
	python3 -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet -r requirements-label-studio.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The whole pipeline on this machine, no AWS account: emulator, real Lambda code, simulated workers.
demo: setup
	$(PY) -m sandbox.demo $(DEMO_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-logo --no-cache

# Three workers on 2 cores, each file on one (its module fixtures start once): much of the suite waits on servers
# (Label Studio, moto, the demos' batching windows), so a third worker fills the waits (docs/performance.md,
# "Developer loop").
test: lint
	$(PY) -m pytest -n 3 --dist loadfile

synth: setup
	$(CDK) synth --quiet
	@echo "Templates are in cdk.out/ ($$(ls cdk.out/*.template.json | xargs))"

deploy: synth
	@$(PY) scripts/deploy_preflight.py
	$(CDK) bootstrap
	$(CDK) deploy --all --require-approval never --outputs-file cdk.out/outputs.json

destroy: setup
	@$(PY) scripts/deploy_preflight.py
	$(CDK) destroy --all --force

# Figures, not tests (docs/performance.md): the launcher per batch size with cold start, the exports,
# one batch imported into a real Label Studio, the pipeline against Label Studio's own sync and exports, and
# Label Studio under its development server against uwsgi (about 22 minutes).
bench: setup
	$(PY) benchmarks/launcher_throughput.py
	$(PY) benchmarks/export_throughput.py
	$(PY) benchmarks/label_studio_import.py
	$(PY) benchmarks/label_studio_side_by_side.py
	$(PY) benchmarks/label_studio_server_load.py
	$(PY) benchmarks/prelabel_stage.py
	$(PY) benchmarks/consolidation.py

clean:
	rm -rf cdk.out demo-output .pytest_cache .mypy_cache .ruff_cache
