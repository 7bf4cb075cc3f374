# The front door. `make demo` and `make test` set everything up themselves (see README).
VENV ?= .venv
STAMP := $(VENV)/.seqstream-installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
# mypy reads the code under its installed names (seqstream.pipeline, seqstream.model).
TYPECHECK := build/typecheck

.PHONY: setup demo test lint bench bench-million-keys broker-start broker-stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock scripts/setup.sh scripts/jvm_jars.sh jvm/spark-kafka/pom.xml jvm/kafka-broker/pom.xml
	bash scripts/setup.sh $(VENV)

# make demo CARRY=1: the carry demo model (each key's LSTM state carried) instead of the window one
demo: setup
	$(VENV)/bin/seqstream demo $(if $(CARRY),--carry)

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	mkdir -p $(TYPECHECK)/seqstream
	ln -sfn ../../../pipeline $(TYPECHECK)/seqstream/pipeline
	ln -sfn ../../../model $(TYPECHECK)/seqstream/model
	MYPYPATH=$(TYPECHECK) $(VENV)/bin/mypy -p seqstream.pipeline -p seqstream.model

test: lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python -m bench.harness $(BENCH_ARGS)

bench-million-keys: setup  # about ten minutes on 2 cores; not part of CI
	$(VENV)/bin/python -m bench.million_keys

broker-start: setup
	$(VENV)/bin/seqstream broker start

broker-stop: setup
	$(VENV)/bin/seqstream broker stop

clean:
	-$(VENV)/bin/seqstream broker stop 2>/dev/null
	rm -rf $(VENV) .seqstream .pytest_cache *.egg-info build
