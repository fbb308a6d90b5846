# Ferry - top-level convenience targets. The build itself is CMake + CTest.
#
#   make bench   install missing Debian packages, build, run `ferry bench`
#                on the bundled mlp-s model (CUDA when a GPU is present)
#   make test    install missing packages, build, run every test; then an
#                ASan+UBSan build runs them all again
#                (the concurrency tests run a third time under TSan: make tsan)
#                and the fuzzers run for FUZZ_SECONDS each (make fuzz)
#   make tsan    ThreadSanitizer build + the engine, pool and batcher tests and
#                ferry serve's SIGTERM
#   make install install the library, header, pkg-config file, CMake package,
#                CLI and Python package under PREFIX (default /usr/local)
#   make pytest  the Python package's tests (build/python, Debian's pytest)
#   make venv    .venv for the benchmarks: Debian's python with its torch and
#                numpy (--system-site-packages) + onnxruntime from PyPI;
#                run bench/real_models.py and tests/models/check_ort.py with
#                .venv/bin/python; includes venv-hf
#   make venv-hf .venv with the pinned transformers (HF_TRANSFORMERS), so that
#                the test models include the Hugging Face family
#                (tests/models/hf.py); make test does this first, and goes on
#                without that family when PyPI cannot be reached
#   make fuzz    clang build of the libFuzzer harnesses (fuzz/), each run for
#                FUZZ_SECONDS (default 60) on a fresh seed corpus

BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
PYTHON     := /usr/bin/python3
FUZZ_SECONDS ?= 60

# Debian packages the build and the tests need (prometheus: its promtool lints
# /metrics in tests/server/test_server.py).
DEB_PACKAGES := cmake make gcc pkg-config libopenblas-dev libprotobuf-c-dev \
	protobuf-c-compiler libonnx-dev libmicrohttpd-dev libcjson-dev libcmocka-dev libdnnl-dev \
	python3 python3-dev python3-venv python3-numpy python3-pytest python3-torch python3-torchvision python3-onnx \
	clang libclang-rt-14-dev nginx curl prometheus

.PHONY: all deps build bench test test-normal test-asan tsan venv venv-hf fuzz format clean

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

test-normal: deps venv-hf
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFERRY_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DFERRY_WERROR=ON -DFERRY_CUDA=OFF \
		-DFERRY_SANITIZE=address,undefined -DFERRY_TEST_MODELS=$(CURDIR)/$(BUILD)/test-models \
		$(CMAKE_ARGS)
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
		-DFERRY_SANITIZE=thread -DFERRY_TEST_MODELS=$(CURDIR)/$(BUILD)/test-models $(CMAKE_ARGS)
	cmake --build $(BUILD)-tsan -j $(JOBS)
	FERRY_STRESS_N=1000 ctest --test-dir $(BUILD)-tsan --output-on-failure -R 'engine|batcher|pool|serve_signal'

# transformers pinned to the version checked against Debian 12's torch 1.13
# (newer releases move to torch 2); its dependencies (numpy >= 1.17,
# tokenizers, huggingface-hub, ...) leave Debian's numpy and torch alone,
# which the check makes sure of. No PyPI: the family is skipped, not failed.
HF_TRANSFORMERS ?= transformers==4.36.2

venv-hf: deps
	@if (test -x .venv/bin/python || $(PYTHON) -m venv --system-site-packages .venv) && \
	    .venv/bin/pip install -q '$(HF_TRANSFORMERS)'; then \
		.venv/bin/python -c "import numpy, torch, transformers, sys; \
			bad = [m.__name__ for m in (numpy, torch) if '/.venv/' in m.__file__]; \
			print('venv-hf: transformers', transformers.__version__, 'torch', torch.__version__); \
			sys.exit('venv shadows Debian: %s' % bad if bad else 0)"; \
	else \
		echo "ferry: could not install $(HF_TRANSFORMERS) into .venv: the Hugging Face test models are skipped"; \
	fi

# onnxruntime only: its dependencies (numpy >= 1.21) are met by Debian's, so pip
# installs no numpy or torch that would shadow them; the check says so if that changes.
venv: deps venv-hf
	test -x .venv/bin/python || $(PYTHON) -m venv --system-site-packages .venv
	.venv/bin/pip install --upgrade onnxruntime
	.venv/bin/python -c "import numpy, torch, onnxruntime, sys; \
		bad = [m.__name__ for m in (numpy, torch) if '/.venv/' in m.__file__]; \
		print('venv: onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__, \
		      'torch', torch.__version__); sys.exit('venv shadows Debian: %s' % bad if bad else 0)"

PREFIX ?= /usr/local

.PHONY: install pytest

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

pytest: build
	FERRY_BUILD_DIR=$(CURDIR)/$(BUILD) FERRY_CLI=$(CURDIR)/$(BUILD)/ferry \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/python tests/install

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz
