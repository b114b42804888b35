# The chart's Kubernetes floor (kubeVersion in deploy/helm/vpn-pbr-operator/Chart.yaml, the
# features behind it in docs/install.md): the CRD tests and the chart tests against a
# kube-apiserver and kubectl of that minor version. Included from the Makefile:
#   include hack/k8s-floor.mk
.PHONY: k8s-floor

# The newest patch release of the floor's minor version that the Go module proxy serves
# (`go list -m -versions k8s.io/kubernetes`).
K8S_FLOOR ?= 1.32.13
CHART_YAML := deploy/helm/vpn-pbr-operator/Chart.yaml

k8s-floor: ## The CRD and chart tests on kube-apiserver and kubectl of the chart's floor, K8S_FLOOR=1.32.13 (the first run builds them: 10 to 20 min on 2 cores)
	@floor=$$(sed -n 's/^kubeVersion: ">=\([0-9]*\.[0-9]*\)\..*/\1/p' $(CHART_YAML)); \
	case $(K8S_FLOOR) in "$$floor".*) ;; \
	  *) echo "K8S_FLOOR=$(K8S_FLOOR) is not of the chart's floor $$floor ($(CHART_YAML))" >&2; exit 1 ;; esac
	$(CARGO) build --locked --bins
	@# The binaries of the floor (hack/k8s-bins/build.sh with K8S_VERSION), the tests' etcd and
	@# helm; the version check makes sure no other kube-apiserver or kubectl stands in.
	source <(K8S_VERSION=$(K8S_FLOOR) hack/tools.sh --control-plane --env) \
	  && export HELM_BIN_DIR=$$(hack/helm/build.sh) \
	  && "$$KUBE_BIN_DIR/kube-apiserver" --version | grep -Fx "Kubernetes v$(K8S_FLOOR)" \
	  && "$$KUBE_BIN_DIR/kubectl" version --client | grep -Fx "Client Version: v$(K8S_FLOOR)" \
	  && $(CARGO) test --locked --test api_crd --test chart
