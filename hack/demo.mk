# make demo / make demo-down (hack/demo.sh). Included from the Makefile:
#   include hack/demo.mk
.PHONY: demo demo-down

# CLUSTER=existing: the cluster KUBECONFIG names instead of a local control plane (opt-in).
CLUSTER ?= local
demo: ## The operator against vpc-emulator on a local control plane with examples/ (CLUSTER=existing: your KUBECONFIG's cluster); leaves it running
	@DEMO_CLUSTER=$(CLUSTER) hack/demo.sh up

demo-down: ## Stop everything `make demo` started (operator, emulator, control plane), or on an existing cluster remove only what it made
	@DEMO_CLUSTER=$(CLUSTER) hack/demo.sh down
