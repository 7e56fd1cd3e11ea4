# cohort: the two commands of the quick start are `make demo` and `make test`. Every target
# installs what is missing first (deploy/install-deps.sh does nothing when all is present).
BUILD_DIR  ?= build
BUILD_TYPE ?= Release
# SANITIZE=address (ASAN+UBSAN), with a separate BUILD_DIR. There is no SANITIZE=thread: see
# docs/ARCHITECTURE.md, "Sanitizers and fuzzing".
SANITIZE   ?=
ifeq ($(SANITIZE),thread)
$(error SANITIZE=thread is not supported: Debian's protobuf, Abseil and gRPC are not built with TSAN (protobuf's MapFieldBase changes layout under __SANITIZE_THREAD__; TSAN cannot see the uninstrumented absl::Mutex). Use SANITIZE=address BUILD_DIR=build-asan, make fuzz, and see docs/ARCHITECTURE.md "Sanitizers and fuzzing")
endif
# make fuzz: a clang build of the libFuzzer targets in FUZZ_DIR, each run for FUZZ_SECONDS.
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fuzz_config fuzz_coordinator
JOBS       ?= $(shell nproc)
# make install PREFIX=/opt/cohort: the binaries, and the CMake package engines embed the agent with.
PREFIX     ?= /usr/local

# ccache, when installed, makes rebuilds (and builds in other work trees) cheap.
CCACHE     := $(shell command -v ccache 2>/dev/null)

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCOHORT_SANITIZE=$(SANITIZE) \
              $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE) -DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE))

.PHONY: all deps configure build test test-gpu demo demo-tls bench bench-full fuzz install package format format-check clean

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

# The same pool with mutual TLS: certificates from deploy/mint-certs.sh, roles from a policy.
demo-tls: build
	@deploy/demo.sh $(BUILD_DIR) --tls

bench:
	@deploy/install-deps.sh --bench
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@bench/run.sh $(BUILD_DIR)

# `make bench` plus 16,384 simulated agents (about 5 minutes more).
bench-full:
	@COHORT_BENCH_16384=1 $(MAKE) --no-print-directory bench

# Not part of `make test`: builds the fuzz targets with clang (libFuzzer + ASAN + UBSAN) and runs
# each for FUZZ_SECONDS on fuzz/corpus/<target> plus FUZZ_DIR/corpus/<target> (what it found
# before). Exits non-zero on the first crash, leak, timeout or OOM; the input is written to
# FUZZ_DIR/artifacts/<target>/ (replay it: FUZZ_DIR/bin/<target> FILE).
fuzz:
	@deploy/install-deps.sh --fuzz
	@cmake -S . -B $(FUZZ_DIR) -DCOHORT_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
	  -DCOHORT_BUILD_TESTS=OFF -DCOHORT_BUILD_BENCH=OFF -DCOHORT_WITH_NCCL=OFF \
	  $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE) -DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE)) >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts/$$t; \
	  echo "== $$t: $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/bin/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ \
	    $$(test -f fuzz/$$t.dict && echo -dict=fuzz/$$t.dict) \
	    $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

# The binaries, the libraries of cohort::agent, their headers (PREFIX/include/cohort) and the CMake
# package (find_package(cohort) with CMAKE_PREFIX_PATH=PREFIX).
install: build
	@cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# One .deb of all of it (installs under /usr), written to BUILD_DIR.
package: build
	@cd $(BUILD_DIR) && cpack -G DEB

# clang-format (.clang-format: Google's style, 100 columns) over every C++ file git tracks;
# format-check changes nothing, prints each line that differs and fails if one does. Both install
# the clang-format package first; nothing else needs it.
CLANG_FORMAT ?= clang-format
FORMAT_FILES  = $(shell git ls-files '*.cc' '*.h')
format:
	@deploy/install-deps.sh --format
	@$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check:
	@deploy/install-deps.sh --format
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD_DIR)
