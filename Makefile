# Two commands do everything on a fresh machine: `make run` and `make test`.
PORT ?= 5000
HOST ?= 127.0.0.1

.PHONY: setup run test lint bench sample

setup:
	./scripts/setup.sh

run: setup
	.venv/bin/gridgov serve --sample --host $(HOST) --port $(PORT)

test: setup
	.venv/bin/python -m pytest --durations=20

lint: setup
	.venv/bin/ruff check app gis tests bench data migrations
	.venv/bin/ruff format --check app gis tests bench data migrations

bench: setup
	for b in bench/bench_*.py; do .venv/bin/python $$b || exit 1; done

sample:
	.venv/bin/python data/sample_boundaries/generate.py
