# A thin layer over CMake. `make run` and `make test` are the README's two
# commands; both install missing Debian packages first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
MAKEFLAGS  += --no-print-directory
CTEST_JOBS ?= 2

.PHONY: all deps build run test test-plain test-asan fuzz bench clean

all: build

deps:
	@.ci/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# The hub on its embedded default (SQLite in ./hub-data, MLLP 2575, HTTP
# 8080), fed by a demo sender so data is seen flowing at once.
run: build
	./$(BUILD)/hub serve --demo

# Every test, twice: as users build it, then under ASan+UBSan.
test: deps test-plain test-asan

test-plain:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j$(CTEST_JOBS)

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DHUB_SANITIZE=address,undefined -DHUB_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(CTEST_JOBS)

# On demand: `make fuzz TARGET=fuzz_v2 SECONDS=600`.
fuzz:
	tests/fuzz/run.sh $(TARGET) $(SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
