# Makefile — the front door of medtrust.
#
# A thin layer over CMake so that one word does one job: `make test` is what
# CI runs (.ci/run), `make demo` shows the platform working, `make fuzz` and
# `make bench` are the tools a reviewer reaches for.  All real build logic
# lives in CMakeLists.txt; this file only chooses build directories, options
# and the order of steps, and every target is listed by `make help`.
#
# Build directories (all git-ignored):
#   build/       RelWithDebInfo, hardened (PIE, RELRO, FORTIFY, CET ...)
#   build-asan/  the same with AddressSanitizer + UndefinedBehaviorSanitizer
#   build-fuzz/  clang, libFuzzer harnesses (-DMT_FUZZ=ON)
#
# Variables: JOBS (parallel build jobs, default nproc), FUZZ_SECONDS (per
# harness, default 60), FUZZ_MAX_LEN (default 70000: a whole packet and
# some), BENCH_ARGS (passed to build/bench/packet, e.g. "--seconds 1 --json"),
# CTEST_ARGS (extra ctest arguments, e.g. "-R packet" or "-j2"), ONBOARD_ARGS
# (passed to build/bench/onboard, e.g. "--devices 5000 --clients 8"),
# INGEST_ARGS (passed to build/bench/ingest, e.g. "--devices 200 --readings 5"),
# ALERT_ARGS (passed to build/bench/alert, e.g. "--devices 200 --alerts 100"),
# CONSOLE_ARGS (passed to bench/console.py, e.g. "--patients 20 --minutes 1").

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
FUZZ_DIR ?= build-fuzz
BUILD_TYPE ?= RelWithDebInfo
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 70000
BENCH_ARGS ?=
ONBOARD_ARGS ?=
INGEST_ARGS ?=
CTEST_ARGS ?=
DEMO_ARGS ?=
CONSOLE_ARGS ?=

CMAKE_COMMON := -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# One harness per fuzz/fuzz_*.c; the corpus of each is fuzz/corpus/<name>/.
FUZZERS := $(sort $(basename $(notdir $(wildcard fuzz/fuzz_*.c))))

.PHONY: help deps build test test-build test-asan demo tour fuzz seeds bench bench-onboard bench-ingest bench-alert bench-console clean

help: ## this list
	@echo "medtrust — make targets:"
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
	  awk -F':.*## ' '{ printf "  %-11s %s\n", $$1, $$2 }'
	@echo
	@echo "variables: JOBS=$(JOBS) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_MAX_LEN=$(FUZZ_MAX_LEN)"
	@echo "           BENCH_ARGS='$(BENCH_ARGS)' CTEST_ARGS='$(CTEST_ARGS)'"
	@echo "           ONBOARD_ARGS='$(ONBOARD_ARGS)' INGEST_ARGS='$(INGEST_ARGS)'"

deps: ## install missing Debian packages (scripts/deps.sh; no network when all present)
	@bash scripts/deps.sh

build: ## configure and build build/ (RelWithDebInfo, hardened)
	cmake -S . -B $(BUILD_DIR) $(CMAKE_COMMON) -DMT_SANITIZE=OFF -DMT_FUZZ=OFF
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Both suites run even when the first fails, so one CI run reports both;
# the exit status is non-zero if either failed.
test: deps ## deps, build, ctest; then the ASan/UBSan build and its ctest (what CI runs)
	@rc=0; \
	$(MAKE) --no-print-directory test-build || rc=1; \
	$(MAKE) --no-print-directory test-asan || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED (see the ctest output above)"; \
	else echo "make test: release and sanitizer suites passed"; fi; \
	exit $$rc

test-build: build ## ctest of build/ only
	ctest --test-dir $(BUILD_DIR) --output-on-failure $(CTEST_ARGS)

test-asan: ## configure, build and ctest build-asan/ (-DMT_SANITIZE=ON)
	cmake -S . -B $(ASAN_DIR) $(CMAKE_COMMON) -DMT_SANITIZE=ON -DMT_FUZZ=OFF
	cmake --build $(ASAN_DIR) -j$(JOBS)
	$(SAN_ENV) ctest --test-dir $(ASAN_DIR) --output-on-failure $(CTEST_ARGS)

demo: deps build ## the whole platform live: broker, hub, 24 devices on two wards, console (Ctrl-C stops)
	bash scripts/demo.sh $(DEMO_ARGS)

tour: deps build ## a scripted tour: sealed packets and refusals; devices onboarding, revocation
	bash scripts/tour-packets.sh
	bash scripts/tour-onboard.sh

$(FUZZ_DIR)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_DIR) $(CMAKE_COMMON) -DCMAKE_C_COMPILER=clang \
	  -DMT_FUZZ=ON -DMT_SANITIZE=ON

fuzz: deps $(FUZZ_DIR)/CMakeCache.txt ## run every libFuzzer harness FUZZ_SECONDS on a copy of its corpus
	cmake --build $(FUZZ_DIR) -j$(JOBS) --target mt_fuzzers
	@mkdir -p fuzz/corpus-work fuzz/out
	@fail=0; summary=""; \
	for h in $(FUZZERS); do \
	  mkdir -p fuzz/corpus-work/$$h fuzz/out/$$h; \
	  if [ -d fuzz/corpus/$$h ]; then cp -rn fuzz/corpus/$$h/. fuzz/corpus-work/$$h/; fi; \
	  echo "== $$h: $(FUZZ_SECONDS) s"; \
	  log=fuzz/out/$$h/run.log; \
	  if $(SAN_ENV) $(FUZZ_DIR)/fuzz/$$h -max_total_time=$(FUZZ_SECONDS) \
	       -max_len=$(FUZZ_MAX_LEN) -timeout=10 -print_final_stats=1 \
	       -artifact_prefix=fuzz/out/$$h/ fuzz/corpus-work/$$h >$$log 2>&1; \
	  then verdict=ok; else verdict=FAILED; fail=1; tail -n 60 $$log; fi; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n1); \
	  rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log | tail -n1); \
	  units=$$(ls fuzz/corpus-work/$$h | wc -l); \
	  summary="$$summary$$(printf '%-24s %-7s %12s execs %9s execs/s %6s corpus files' \
	    $$h $$verdict "$${execs:-?}" "$${rate:-?}" $$units)\n"; \
	done; \
	echo; echo "fuzz summary ($(FUZZ_SECONDS) s each; logs and crashes in fuzz/out/):"; \
	printf "$$summary"; exit $$fail

seeds: $(FUZZ_DIR)/CMakeCache.txt ## regenerate the library-made seeds in fuzz/corpus/ (fuzz/make_seeds.c)
	cmake --build $(FUZZ_DIR) -j$(JOBS) --target make_seeds
	$(FUZZ_DIR)/fuzz/make_seeds fuzz/corpus

bench: build ## packet benchmark on one core: seal/open vs raw OpenSSL verify; then onboarding
	$(BUILD_DIR)/bench/packet $(BENCH_ARGS)
	$(BUILD_DIR)/bench/onboard --medtrust $(BUILD_DIR)/medtrust $(ONBOARD_ARGS)

bench-onboard: build ## EST enrolment + onboarding of 1,000 soft-key devices (goal >= 300/s)
	$(BUILD_DIR)/bench/onboard --medtrust $(BUILD_DIR)/medtrust $(ONBOARD_ARGS)

bench-ingest: build ## mosquitto + medtrustd + 1,000 mTLS devices: ingest vs its limits (goal >= 6,000/s, p99 <= 250 ms)
	$(BUILD_DIR)/bench/ingest --medtrust $(BUILD_DIR)/medtrust $(INGEST_ARGS)

bench-alert: build ## fast packet -> alarm on the console's live stream under 1,000 devices of vitals (goal p99 <= 50 ms)
	$(BUILD_DIR)/bench/alert --medtrust $(BUILD_DIR)/medtrust $(ALERT_ARGS)

bench-console: build ## 100 patients at 1 Hz on /ward in headless Chromium for 10 min (goal SSE->DOM p95 <= 100 ms)
	/usr/bin/python3 bench/console.py --build $(BUILD_DIR) $(CONSOLE_ARGS)

clean: ## remove build/, build-asan/, build-fuzz/, fuzz work dirs, demo-deploy/, tour-deploy/
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR) fuzz/corpus-work fuzz/out demo-deploy tour-deploy
