# Developer entry points. Every target bootstraps first (idempotent; installs what a fresh Debian lacks).
SHELL := /bin/bash
BIN := .venv/bin

.PHONY: bootstrap test test-fast test-real lint generate demo image-check testenv-up testenv-down bench bench-smoke

bootstrap:
	@hack/bootstrap.sh

## test: the whole test suite, both tiers (the real-node tier needs root)
test: bootstrap
	$(BIN)/pytest

## test-fast: the fast tier (real control plane, simulated kubelet)
test-fast: bootstrap
	$(BIN)/pytest -m "not realnode"

## test-real: the real-node tier (real pods; root)
test-real: bootstrap
	$(BIN)/pytest -m realnode

## lint: ruff, formatting, mypy --strict, import-linter contracts, generated files up to date
lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python hack/fmt_skip.py --check
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python hack/generate.py --check
	$(BIN)/hadolint Dockerfile

## image-check: the Dockerfile's install step, run outside Docker (runtime dependencies only)
image-check: bootstrap
	@PYTHON=$(BIN)/python hack/image-install-check.sh

## generate: rewrite api/v1/*.yaml and api/reference.md from the pydantic models
generate: bootstrap
	$(BIN)/python hack/generate.py

## demo: the main job on the embedded default (starts, shows and stops everything itself)
demo: bootstrap
	$(BIN)/python hack/demo.py $(DEMO_ARGS)

testenv-up: bootstrap
	@PYTHON=$(BIN)/python hack/testenv.sh up

testenv-down:
	@PYTHON=$(BIN)/python hack/testenv.sh down

## bench: the benchmark suite (RAW, the controller, kopf; P1-P8) into bench/results/ (about 20 minutes)
bench: bootstrap
	$(BIN)/python bench/suite.py

## bench-smoke: the suite at small sizes into a temporary directory (CI runs it so it cannot rot)
bench-smoke: bootstrap
	$(BIN)/python bench/suite.py --quick
