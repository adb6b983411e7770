# Task runner of the Training Program Platform. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
# Extra arguments for pytest (make test ARGS="-k outbox -x") or the benchmark.
ARGS ?=

.PHONY: help install stack-up stack-down stack-reset stack-status up down test chaos lint bench ops deploy-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install: ## install uv if missing, then the whole workspace from uv.lock
	@command -v uv >/dev/null || pip install -q uv==$(UV_VERSION) \
	  || python3 -m pip install -q --break-system-packages uv==$(UV_VERSION)
	uv sync --all-packages --frozen

stack-up: ## start PostgreSQL and Kafka under .stack/, create databases and topics, migrate
	deploy/stack.sh up

stack-down: ## stop PostgreSQL and Kafka
	deploy/stack.sh down

stack-reset: ## stop the stack and delete its data (keeps the downloaded Kafka jars)
	deploy/stack.sh reset

stack-status: ## show what runs
	deploy/stack.sh status

up: ## the whole platform: stack, services, demo data
	deploy/platform.sh up

down: ## stop the services, then the stack
	if [[ -x deploy/platform.sh ]]; then deploy/platform.sh down; fi
	deploy/stack.sh down

test: ## install, stack up, pytest $(ARGS), stack down if the run started it
	deploy/test.sh $(ARGS)

chaos: ## fault-injection suite on its own stack (.chaos/, other ports): short form; ARGS=--long for 100,000 commands, ARGS=--cluster for 3 brokers and 2 replicas of each service
	make --no-print-directory install
	uv run --no-sync python -m tests.chaos $(ARGS)

deploy-check: ## the Helm chart offline: lint, render, every object against its schema, promtool (tools into .tools/, ~11 min the first time)
	make --no-print-directory install
	deploy/tools.sh
	uv run --no-sync python deploy/helm/check.py

lint: ## ruff lint and format check, mypy strict
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy libs services tests

bench: ## benchmarks on the local stack (~10 min; ARGS="--quick" or module names), see bench/README.md
	deploy/stack.sh up
	set -a; . deploy/local.env; set +a; uv run python bench/run.py $(ARGS)

ops: ## operators' CLI on the local stack: make ops ARGS="dlq list" (status, outbox, lag, dlq, replay)
	@set -a; . deploy/local.env; set +a; uv run --no-sync tpp-ops $(if $(ARGS),$(ARGS),--help)
