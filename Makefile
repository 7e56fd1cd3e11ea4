# cohort: the two commands of the quick start are `make demo` and `make test`. Every target
# installs what is missing first (deploy/install-deps.sh does nothing when all is present).
BUILD_DIR  ?= build
BUILD_TYPE ?= Release
# SANITIZE=address (ASAN+UBSAN) or SANITIZE=thread (TSAN); use a separate BUILD_DIR for each.
SANITIZE   ?=
JOBS       ?= $(shell nproc)

# ccache, when installed, makes rebuilds (and builds in other work trees) cheap.
CCACHE     := $(shell command -v ccache 2>/dev/null)

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCOHORT_SANITIZE=$(SANITIZE) \
              $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE) -DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE))

.PHONY: all deps configure build test test-gpu demo bench clean

all: build

deps:
	@deploy/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Every CPU test; tests that need a GPU carry the `gpu` label and run with `make test-gpu`.
test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -LE gpu --timeout 300

test-gpu: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L gpu --timeout 300

demo: build
	@deploy/demo.sh $(BUILD_DIR)

bench:
	@deploy/install-deps.sh --bench
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@bench/run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
