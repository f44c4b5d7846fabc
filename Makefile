# Two commands do everything on a fresh machine: `make run` and `make test`.
PORT ?= 5000
HOST ?= 127.0.0.1
# The suite runs in this many processes (pytest-xdist), each test file whole in one of them.
TEST_WORKERS ?= 2

.PHONY: setup run test lint bench sample

setup:
	./scripts/setup.sh

run: setup
	.venv/bin/gridgov serve --sample --host $(HOST) --port $(PORT)

test: setup
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

lint: setup
	.venv/bin/ruff check app gis tests bench data migrations
	.venv/bin/ruff format --check app gis tests bench data migrations

# Every benchmark runs (project and baseline alternating in rounds); each hot path adds one row,
# and the table of all rows (hot path, project, baseline, ratio, load, target) is printed last,
# after the wall time of each benchmark and the total. The synthetic cities are built once and
# kept (bench/city.py). BENCH_ARGS="--only coverage,cases" or "--skip partition" picks a subset.
bench: setup
	.venv/bin/python bench/run_all.py $(BENCH_ARGS)

sample:
	.venv/bin/python data/sample_boundaries/generate.py
