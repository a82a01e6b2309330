# Shortcuts for people who type make; ./dev is the source of truth.
.PHONY: up test deps lint bench

up:
	./dev up

test:
	./dev test

deps:
	./dev deps

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy corral corralctl controlplane scheduler nodeagent && .venv/bin/lint-imports --no-cache

bench:
	.venv/bin/python bench/api_bench.py
