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

# Every benchmark runs (project and baseline alternating in rounds); each hot path adds one row,
# and the table of all rows (hot path, project, baseline, ratio, load, target) is printed last.
bench: setup
	mkdir -p var && rm -f var/bench_table.jsonl
	status=0; for b in bench/bench_*.py; do \
	  GRIDGOV_BENCH_TABLE=var/bench_table.jsonl .venv/bin/python $$b || status=1; done; \
	.venv/bin/python bench/report.py var/bench_table.jsonl && exit $$status

sample:
	.venv/bin/python data/sample_boundaries/generate.py
