# vpn-pbr-operator: one entry point for building, testing and running locally.
# Heavy artefacts (Kubernetes binaries, etcd, helm, the Python SDK virtualenv) are cached under
# $(CACHE) and built once.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/vpn-pbr-operator
export VPN_PBR_CACHE := $(CACHE)
CARGO ?= cargo
# Where cargo puts binaries (CI points CARGO_TARGET_DIR at a cache outside the clone).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: all build tools test lint unit integration crds cluster-up cluster-down clean-cache help sim audit

all: build

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

include hack/demo.mk
include hack/bench.mk
include hack/e2e.mk
include hack/k8s-floor.mk

build: ## Build every binary of the workspace: the operator, crdgen, vpc-emulator, pbr-bench (debug)
	$(CARGO) build --locked --bins

tools: ## Build or install every tool the tests need (idempotent; first run takes minutes)
	@hack/tools.sh > /dev/null

# Every CRD of src/api/ (api::crds()).
CRD_NAMES := vpnpbrroutes.vpn.alicloud.dev vpnaccounts.vpn.alicloud.dev

crds: ## Regenerate crds/ and the chart's CRD templates from the Rust types
	$(CARGO) build --locked --quiet --bin crdgen
	for crd in $(CRD_NAMES); do \
	  $(TARGET_DIR)/debug/crdgen $$crd > crds/$$crd.yaml && \
	  $(TARGET_DIR)/debug/crdgen --chart-template $$crd \
	    > deploy/helm/vpn-pbr-operator/templates/crds/$$crd.yaml || exit 1; \
	done

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: tools lint ## The one test command: tools, fmt, clippy, unit and integration tests (every crate), the e2e on a host made fresh
	$(CARGO) build --locked --bins
	source <(hack/tools.sh --env) && $(CARGO) test --locked --lib --bins --tests
	@# tests/e2e.rs and tests/install_steps.rs are #[ignore]d in plain `cargo test` (root, real nodes);
	@# here they run on a host made fresh (hack/first-run.sh: the first-run check).
	source <(hack/tools.sh --env) && hack/first-run.sh

audit: ## cargo-deny over the dependencies (deny.toml): advisories, licences, bans, sources; ADVISORY_DB=dir checks against a local copy of the advisory database
	hack/cargo-deny.sh

# The deterministic simulation (tests/simulation.rs); `make test` runs it with 1000 seeds.
SEEDS ?= 1000
SEED ?=
WORLD ?=
SIM_FLAGS ?=
sim: ## Simulate the route lifecycle: SEEDS=n seeds (default 1000), SEED=n replays one (SIM_TRACE=1 prints its trace), WORLD=all|+pages,... the realistic world's features
	SIM_SEEDS=$(SEEDS) SIM_SEED=$(SEED) SIM_WORLD=$(WORLD) $(CARGO) test --locked $(SIM_FLAGS) -p vpn-pbr-operator --test simulation -- --nocapture

cluster-up: ## Start a local etcd + kube-apiserver in the background; prints export KUBECONFIG=...
	@hack/cluster.sh up

cluster-down: ## Stop the local control plane
	@hack/cluster.sh down

clean-cache: ## Remove every cached tool and the local cluster
	hack/cluster.sh down || true
	rm -rf $(CACHE)
