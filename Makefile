# Thin wrapper around CMake. The two commands of the README:
#   make run   install what is missing, build, start a private broker and hearthd
#   make test  install what is missing, build, run every test (ctest)
MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS ?= $(shell nproc)
PORT ?= 1883
RUN_DIR ?= .run

.PHONY: all deps configure build run test clean

all: build

deps:
	@tools/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@tools/hearth-run $(BUILD) $(RUN_DIR) $(PORT)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 900

clean:
	rm -rf $(BUILD) $(RUN_DIR)
