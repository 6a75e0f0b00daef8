# Thin wrapper around CMake. The two commands of the README:
#   make run   install what is missing, build, start a private broker and hearthd
#   make test  install what is missing, build, run every test (ctest): the normal build, then the
#              same tests built with ASan+UBSan (build-asan), then bounded libFuzzer runs from
#              the checked-in corpora (build-fuzz, clang). docs/reliability.md has the details.
MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS ?= $(shell nproc)
PORT ?= 1883
# make run's front door (plugin web, on 127.0.0.1): https:// + wss://, mqtts://, /metrics.
WEB_PORT ?= 8443
MQTTS_PORT ?= 8883
METRICS_PORT ?= 9883
RUN_DIR ?= .run
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# make deb [ARCH=arm64]: the Debian packages, in $(DEB_BUILD) (docs/building.md).
DEB_BUILD ?= build-deb
ARCH ?= $(shell dpkg --print-architecture)
# A sanitizer finding in any process (unit test, hearthd, hearthctl, a plugin) is written to
# $(ASAN_BUILD)/sanitizer-reports and fails the run, also when the test itself did not notice.
SAN_REPORTS = $(abspath $(ASAN_BUILD))/sanitizer-reports
SAN_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:print_stacktrace=1:log_path=$(SAN_REPORTS)/asan \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(SAN_REPORTS)/ubsan
# -O1 -g1: what ASan recommends, at a third of the compile time of -O2 -g. GCC 12 reports
# std::regex internals as maybe-uninitialized at -O1 with ASan (a known false positive).
ASAN_FLAGS = -DHEARTH_SANITIZE=ON -DHEARTH_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug \
	"-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1 -Wno-maybe-uninitialized"
FUZZ_FLAGS = -DCMAKE_CXX_COMPILER=clang++ -DHEARTH_BUILD_FUZZERS=ON -DHEARTH_BUILD_TESTS=OFF \
	-DHEARTH_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1"

.PHONY: all deps configure build run test test-default test-asan test-fuzz bench clean deb

all: build

deps:
	@tools/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@tools/hearth-run $(BUILD) $(RUN_DIR) $(PORT) $(WEB_PORT) $(MQTTS_PORT) $(METRICS_PORT)

test: test-default test-asan test-fuzz

test-default: build
	@cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 900

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) $(ASAN_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	@cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j 2 --timeout 1200 -LE package
	@if [ -n "$$(ls -A $(SAN_REPORTS))" ]; then \
	  echo "sanitizer reports:"; cat $(SAN_REPORTS)/*; exit 1; fi

test-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) $(FUZZ_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target hearth_fuzzers
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -j 2 -L fuzz

# Each fuzz target for FUZZ_SECONDS (default 1 h) from its corpus, all at once at nice 19;
# prints executions, exec/s, coverage and findings per target (docs/reliability.md).
FUZZ_SECONDS ?= 3600
.PHONY: fuzz-long
fuzz-long: deps
	@cmake -S . -B $(FUZZ_BUILD) $(FUZZ_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target hearth_fuzzers
	@tests/fuzz/fuzz_long.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# make bench SDCARD=5ms: every benchmark with hearthd's fsync/fdatasync slowed by that much (the
# SD-card model, bench/sdcard_shim.cc).
SDCARD ?=
bench: build
	@SDCARD=$(SDCARD) bench/run_all.sh $(BUILD)

deb: deps
	@tools/hearth-deb $(DEB_BUILD) $(ARCH)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(DEB_BUILD) $(RUN_DIR)
