# make demo / make demo-down (hack/demo.sh). Included from the Makefile:
#   include hack/demo.mk
.PHONY: demo demo-down

demo: ## The operator against vpc-emulator on a local control plane with examples/; leaves it running
	@hack/demo.sh up

demo-down: ## Stop everything `make demo` started (operator, emulator, control plane)
	@hack/demo.sh down
