# Skiff: `make run` installs what is missing, builds and starts the whole
# platform on this machine; `make test` runs every test.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

DATA ?= /var/lib/skiff
SKIFF_FLAGS ?=
# -count=1: the end-to-end tests build and run the binary, which the test
# cache does not see change.
GO_TEST_FLAGS ?= -timeout 25m -count=1

.PHONY: all deps build install run test vet fmt clean

all: build

deps:
	@bash scripts/setup.sh

build:
	go build -o bin/skiff ./cmd/skiff

# install puts the binary on the PATH so that `skiff` works in any shell.
install: build
	@if [ -w /usr/local/bin ]; then install -m 0755 bin/skiff /usr/local/bin/skiff && echo "installed /usr/local/bin/skiff"; \
	else echo "note: /usr/local/bin is not writable; use $(CURDIR)/bin/skiff"; fi

run: deps install
	./bin/skiff server --data $(DATA) $(SKIFF_FLAGS)

vet:
	go vet ./...
	@test -z "$$(gofmt -l cmd internal test bench 2>/dev/null)" || { gofmt -l cmd internal test bench; echo "gofmt needed"; exit 1; }

test: deps build vet
	go test $(GO_TEST_FLAGS) ./...

clean:
	rm -rf bin
