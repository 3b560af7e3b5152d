# Two commands on a fresh Debian 12 machine (as root): `make demo` and `make test`.
# Every target installs the Debian packages it needs first (scripts/install-deps.sh, idempotent).

BUILD      ?= build
BUILD_TYPE ?= Release
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build demo test bench install fuzz conformance clean

all: build

deps:
	bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main example: a clang-compiled BPF program loaded and run by the interpreter.
demo: build
	$(BUILD)/bin/checksum "hello, ebpfrt"

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The public conformance suite through the plugin (needs ../shared beside the checkout).
conformance: build
	bash ../shared/conformance/check.sh $(BUILD)/bin/ebpfrt-conformance-plugin ../shared/conformance/tests

bench: build
	bash bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# libFuzzer + ASan/UBSan build with clang-19 in build-fuzz/; RUNS=N executions (default 1000000).
fuzz: deps
	bash scripts/fuzz.sh $(RUNS)

clean:
	rm -rf $(BUILD) build-fuzz
