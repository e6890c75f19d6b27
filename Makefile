# hetee — the two commands (README): `make test`, `make demo`; plus `make bench`.
# Every target first installs missing Debian packages (scripts/install-deps.sh).
BUILD      ?= build
ASAN_BUILD ?= build-asan
REL_BUILD  ?= build-release
JOBS       ?= $(shell nproc)
CMAKE_GEN   = cmake -S . -DHETEE_WERROR=ON
PREFIX     ?= /usr/local

.PHONY: all deps build test test-asan demo bench install clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CMAKE_GEN) -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Unit + integration tests on the normal build, then the same suite under
# AddressSanitizer + UBSan.
# A failing test runs once more (--repeat until-pass:2); one that fails
# twice fails the suite, and ctest's output names every retried test
# (README, "The two commands").
test: build
	cd $(BUILD) && ctest --output-on-failure --repeat until-pass:2 -j $(JOBS)
	$(MAKE) --no-print-directory test-asan

test-asan: deps
	$(CMAKE_GEN) -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHETEE_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && HETEE_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --repeat until-pass:2 -j $(JOBS)

demo: deps
	$(CMAKE_GEN) -B $(REL_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(REL_BUILD) -j $(JOBS)
	bash scripts/demo.sh $(REL_BUILD)

bench: deps
	$(CMAKE_GEN) -B $(REL_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(REL_BUILD) -j $(JOBS)
	$(REL_BUILD)/bin/hetee-bench ntt --logn 13
	$(REL_BUILD)/bin/hetee-bench ckks --logn 13
	$(REL_BUILD)/bin/hetee-bench ckks --logn 14
	$(REL_BUILD)/bin/hetee-bench ckks --logn 13 --chain ifma
	$(REL_BUILD)/bin/hetee-bench enclave
	$(REL_BUILD)/bin/hetee-bench hemat
	$(REL_BUILD)/bin/hetee-bench infer --model models/e2dm.onnx --batch 64 --images 1024 --threads 2
	$(REL_BUILD)/bin/hetee-bench infer --model models/e2dm.onnx --batch 1 --images 16 --threads 2
	$(REL_BUILD)/bin/hetee-bench infer --model models/cnn.onnx --batch 64 --images 256 --threads 2
	$(REL_BUILD)/bin/hetee-bench infer --model models/mlp.onnx --batch 64 --images 256 --threads 2
	HETEE_SOURCE_DIR=$(CURDIR) $(REL_BUILD)/bin/hetee-bench service --clients 16 --batch 64 --images 2048 --model models/e2dm.onnx

# Release build installed under $(PREFIX) (DESTDIR honoured): bin/hetee,
# hetee-enclave, hetee-launcher, hetee-bench; include/hetee/*.h; the client
# library's static archives and lib/pkgconfig/hetee.pc.
install: deps
	$(CMAKE_GEN) -B $(REL_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(REL_BUILD) -j $(JOBS)
	cmake --install $(REL_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(REL_BUILD)
