# Thin wrapper over CMake. `make`, `make demo`, `make test`, `make bench`, `make asan`, `make deps`, `make fuzz`.
BUILD ?= build
TYPE ?= Release
JOBS ?= $(shell nproc)
space := $(subst ,, )
CMAKE_FLAGS ?=

# `make fuzz`: the .pth reader under libFuzzer + ASan + UBSan for FUZZ_TIME seconds (clang;
# built outside CMake from just the sources the reader needs), seeded with tests/fuzz/corpus;
# new inputs go to build-fuzz/corpus. Fails on any crash, leak or sanitizer report.
FUZZ_TIME ?= 60
FUZZ_CC ?= clang
FUZZ_SRC = src/io/pth.c src/io/pickle.c src/io/file.c src/core/status.c src/core/mem.c src/core/log.c \
           src/core/timer.c src/core/tensor.c tests/fuzz/fuzz_pth.c

.PHONY: all configure test bench asan asan-test tsan-test deps clean fuzz demo

all: configure
	cmake --build $(BUILD) -j $(JOBS)

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j 1

bench: all
	$(BUILD)/bench_ops

# `make demo`: the built-in default of `ssd train` (no --data): a cached synthetic set, a short
# schedule (~10 min on 2 cores), evaluation and detection pictures in ssd-demo/ (docs/train.md).
demo: all
	$(BUILD)/ssd train

asan:
	$(MAKE) BUILD=build-asan TYPE=Asan all

asan-test:
	$(MAKE) BUILD=build-asan TYPE=Asan test

# `make tsan-test`: the multi-threaded tests (the data loader's worker threads and ring) under
# ThreadSanitizer, in build-tsan/ (with the ssd program they run); test_mllog: concurrent loggers.
TSAN_TESTS ?= test_loader test_mllog
tsan-test:
	@test -f build-tsan/CMakeCache.txt || cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_FLAGS="-fsanitize=thread -O1" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread"
	cmake --build build-tsan -j $(JOBS) --target $(TSAN_TESTS) ssd_bin
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -R '^($(subst $(space),|,$(TSAN_TESTS)))$$'

deps:
	bash tools/install_deps.sh

fuzz:
	mkdir -p build-fuzz/corpus
	$(FUZZ_CC) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -D_POSIX_C_SOURCE=200809L -Isrc $(FUZZ_SRC) -larchive -o build-fuzz/fuzz_pth
	build-fuzz/fuzz_pth -max_total_time=$(FUZZ_TIME) -print_final_stats=1 -rss_limit_mb=2048 \
	  -timeout=10 build-fuzz/corpus tests/fuzz/corpus > build-fuzz/fuzz.log 2>&1; \
	  rc=$$?; tail -n 25 build-fuzz/fuzz.log; \
	  echo "fuzz: $$(grep -o 'number_of_executed_units: [0-9]*' build-fuzz/fuzz.log) in $(FUZZ_TIME) s, exit $$rc"; \
	  exit $$rc

clean:
	rm -rf build build-asan build-fuzz
