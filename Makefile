# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install certs client screenshots system-deps lint clean test-compose

run: install certs ## start the whole system (embedded default) on https://127.0.0.1:8443 and wss://127.0.0.1:8765
	$(BIN)/chase serve

test: install ## run the whole test suite (unit, integration, e2e, gui)
	@# Qt's system libraries: installed when we are root, else named (and the GUI tests left out).
	-@bash deploy/install-system-deps.sh
	@# The Docker engine for the compose tests (tests/compose): installed and started when we are root.
	-@bash deploy/install-docker.sh
	@# Prosody for the benchmark's smoke test (skipped without it): one apt-get when we are root.
	-@bash deploy/install-bench-deps.sh
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest $(PYTEST_ARGS)

client: install certs ## open the desktop client
	$(BIN)/chase client

screenshots: install certs system-deps ## render the client's windows to docs/images/
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/screenshots.py

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[client,test]'
	touch $(STAMP)

test-compose: install ## only the compose tests (a real Docker engine: the whole topology in containers)
	-@bash deploy/install-docker.sh
	$(BIN)/pytest -p no:cacheprovider tests/compose $(PYTEST_ARGS)

certs: install
	$(BIN)/chase certs

system-deps:
	bash deploy/install-system-deps.sh

clean:
	rm -rf $(VENV) var .pytest_cache

.PHONY: bench
bench: install ## baselines, ChaSe end to end, fan-out next to Prosody (needs MariaDB and RabbitMQ); BENCH_ARGS=--quick for a short run
	@# Prosody (Debian's package) for the fan-out side by side: installed when we are root, else named and skipped.
	-@bash deploy/install-bench-deps.sh
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)
