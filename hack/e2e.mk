# Images, local nodes and the end-to-end test. Included from the Makefile:
#   include hack/e2e.mk
.PHONY: images node-up node-down e2e

images: ## Build the operator and emulator images from the Dockerfile with buildah (hack/image/build.sh)
	@hack/image/build.sh

node-up: ## Start a real local node (kubelet + containerd; needs root) with the images; prints export KUBECONFIG=...
	@hack/node.sh up $$(hack/image/build.sh | sed 's/^/--image /')

node-down: ## Stop the local node and restore the host (processes, mounts, iptables, cgroups, sysctls)
	@hack/node.sh down

e2e: ## End to end on 2 local nodes: images, emulator Pod, helm install/upgrade/uninstall; then the install steps of README.md and docs/install.md as written (needs root)
	$(CARGO) build --locked --bins
	source <(hack/tools.sh --env) && $(CARGO) test --locked --test e2e --test install_steps -- --ignored --nocapture
