# vigie — the front door. Everything comes from Debian 12 packages (.ci/packages.txt).
#   make deps    install missing packages (quiet when all are there)
#   make build   configure + build into build/ (RelWithDebInfo, Ninja)
#   make test    build, run every test (ctest), then check the city rules and run their tests
#   make run     build, then the city demo (bench/run-city.sh)
#   make bench   build, then the benchmarks (bench/run-bench.sh $(ARGS): words, e.g. ARGS="--quick --runs 1")
#   make asan    ASan + UBSan build in build-asan/ and its tests
#   make tsan    TSan build in build-tsan/ of the concurrency tests (ctest -L concurrency), and run them
#   make fuzz    libFuzzer targets, 60 s each (tests/fuzz/run.sh)
#   make clean   remove every build directory
SHELL := /bin/bash
JOBS ?= $(shell nproc)
ARGS ?=
CMAKE_GEN := cmake -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build test run bench asan tsan fuzz clean

all: build

deps:
	@.ci/deps

build: deps
	@$(CMAKE_GEN) -S . -B build >/dev/null
	ninja -C build -j$(JOBS)

test: build
	ctest --test-dir build --output-on-failure -j2
	build/daemon/vigie check config/rules
	build/daemon/vigie test config/rules/tests

run: build
	bench/run-city.sh

bench: build
	bench/run-bench.sh $(ARGS)

asan: deps
	@$(CMAKE_GEN) -S . -B build-asan -DVIGIE_SANITIZE=ON -DVIGIE_BUILD_BENCH=OFF >/dev/null
	ninja -C build-asan -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir build-asan --output-on-failure -j2

# Only the binary that holds the `concurrency`-labelled tests is built (CI runs this target).
tsan: deps
	@$(CMAKE_GEN) -S . -B build-tsan -DVIGIE_TSAN=ON -DVIGIE_BUILD_BENCH=OFF >/dev/null
	ninja -C build-tsan -j$(JOBS) daemon_tests
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --test-dir build-tsan --output-on-failure -L concurrency

fuzz: deps
	tests/fuzz/run.sh 60

clean:
	rm -rf build build-asan build-tsan build-fuzz
