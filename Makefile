# The front door. `make demo` and `make test` set everything up themselves (see README).
VENV ?= .venv
STAMP := $(VENV)/.seqstream-installed
PYTEST_ARGS ?=

.PHONY: setup demo test broker-start broker-stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock scripts/setup.sh
	bash scripts/setup.sh $(VENV)

demo: setup
	$(VENV)/bin/seqstream demo

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

broker-start: setup
	$(VENV)/bin/seqstream broker start

broker-stop: setup
	$(VENV)/bin/seqstream broker stop

clean:
	-$(VENV)/bin/seqstream broker stop 2>/dev/null
	rm -rf $(VENV) .seqstream .pytest_cache *.egg-info
