# Thin wrapper over CMake. `make`, `make test`, `make bench`, `make asan`, `make deps`.
BUILD ?= build
TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all configure test bench asan asan-test deps clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j 1

bench: all
	$(BUILD)/bench_ops

asan:
	$(MAKE) BUILD=build-asan TYPE=Asan all

asan-test:
	$(MAKE) BUILD=build-asan TYPE=Asan test

deps:
	bash tools/install_deps.sh

clean:
	rm -rf build build-asan
