# Loghouse developer entry points. `make help` lists them.
SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
FUZZTIME ?= 15s
BENCHTIME ?= 2s
BENCHCOUNT ?= 5

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the loghoused binary into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/loghoused ./loghoused

.PHONY: run
run: ## Run the main job: for now, a demo of the storage engine in a temporary directory.
	$(GO) run ./loghoused demo

.PHONY: test
test: ## Run every test with the race detector.
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: check
check: fmt vet lint tidy ## gofmt, go vet, golangci-lint and the go mod tidy diff.

.PHONY: fmt
fmt: ## Fail if any Go file is not gofmt'ed.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint with the linters listed in .golangci.yml.
	$(GOLANGCI_LINT) run ./...

.PHONY: tidy
tidy: ## Fail if go mod tidy would change go.mod or go.sum.
	$(GO) mod tidy -diff

.PHONY: bench
bench: ## Storage engine benchmarks (records/s, MB/s, allocs); BENCHTIME, BENCHCOUNT tune them.
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(BENCHCOUNT) ./pkg/commitlog

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME.
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf $(BIN) dist
