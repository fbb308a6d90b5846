# Ferry - top-level convenience targets. The build itself is CMake + CTest.
#
#   make bench   install missing Debian packages, build, run `ferry bench`
#                on the bundled mlp-s model (CUDA when a GPU is present)
#   make test    install missing packages, build, run every test; then an
#                ASan+UBSan build runs them all again
#                (the concurrency tests run a third time under TSan: make tsan)
#                and the fuzzers run for FUZZ_SECONDS each (make fuzz)
#   make tsan    ThreadSanitizer build + the engine, pool and batcher tests
#   make fuzz    clang build of the libFuzzer harnesses (fuzz/), each run for
#                FUZZ_SECONDS (default 60) on a fresh seed corpus

BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
PYTHON     := /usr/bin/python3
FUZZ_SECONDS ?= 60

# Debian packages the build and the tests need.
DEB_PACKAGES := cmake make gcc pkg-config libopenblas-dev libprotobuf-c-dev \
	protobuf-c-compiler libonnx-dev libmicrohttpd-dev libcjson-dev libcmocka-dev libdnnl-dev \
	python3 python3-numpy python3-torch python3-onnx clang libclang-rt-14-dev

.PHONY: all deps build bench test test-normal test-asan tsan fuzz format clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "ferry: installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

bench: build
	./$(BUILD)/ferry bench

test-normal: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFERRY_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DFERRY_WERROR=ON -DFERRY_CUDA=OFF \
		-DFERRY_SANITIZE=address,undefined $(CMAKE_ARGS)
	cmake --build $(BUILD)-asan -j $(JOBS)
	FERRY_STRESS_N=2000 ctest --test-dir $(BUILD)-asan --output-on-failure -j $(JOBS)

test: test-normal test-asan tsan fuzz

# The library with coverage + ASan/UBSan, without oneDNN (its OpenMP is
# GCC's); the seed corpus takes the models test-normal made.
fuzz: deps
	cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DFERRY_CUDA=OFF -DFERRY_DNNL=OFF -DFERRY_FUZZ=ON $(CMAKE_ARGS)
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzzers
	fuzz/run.sh $(BUILD)-fuzz $(FUZZ_SECONDS) $(BUILD)/models $(BUILD)/test-models

tsan: deps
	cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=Debug -DFERRY_CUDA=OFF \
		-DFERRY_SANITIZE=thread $(CMAKE_ARGS)
	cmake --build $(BUILD)-tsan -j $(JOBS)
	FERRY_STRESS_N=1000 ctest --test-dir $(BUILD)-tsan --output-on-failure -R 'engine|batcher|pool'

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz
