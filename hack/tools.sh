#!/usr/bin/env bash
# Builds or installs the tools the tests and the demo need, each skipped when already present
# (or linked from the machine: hack/reuse-binary.sh). Prints where they are.
#
#   hack/tools.sh                     every tool `make test` needs
#   hack/tools.sh --control-plane     only kube-apiserver, kubectl and etcd (what `make demo` uses)
#   hack/tools.sh [...] --env         `export` lines for the test run instead
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV=0 ALL=1
for a in "$@"; do
  case $a in
    --env) ENV=1 ;;
    --control-plane) ALL=0 ;;
    *) echo "usage: $0 [--control-plane] [--env]" >&2; exit 2 ;;
  esac
done
if [ "$ALL" = 1 ]; then
  # --node: also kubelet, kube-controller-manager, kube-scheduler for the local nodes (make e2e).
  KUBE_BIN_DIR=$("$ROOT/hack/k8s-bins/build.sh" --node)
  SDK_PYTHON=$("$ROOT/hack/python-venv.sh")
  HELM_BIN_DIR=$("$ROOT/hack/helm/build.sh")
  PROMTOOL_BIN_DIR=$("$ROOT/hack/promtool/build.sh")
  # kstatus and Argo CD's health check over the operator's statuses (tests/gitops_health.rs).
  GITOPS_VERDICTS=$("$ROOT/hack/gitops-verdicts/build.sh")
  # The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (tests/e2e.rs).
  PROMETHEUS_CRDS_DIR=$("$ROOT/hack/prometheus-crds/build.sh")
else
  KUBE_BIN_DIR=$("$ROOT/hack/k8s-bins/build.sh")
fi
ETCD_BIN_DIR=$("$ROOT/hack/etcd/build.sh")
if [ "$ENV" = 1 ]; then
  echo "export KUBE_BIN_DIR=$KUBE_BIN_DIR ETCD_BIN_DIR=$ETCD_BIN_DIR"
  echo "export PATH=$KUBE_BIN_DIR:\$PATH"
  if [ "$ALL" = 1 ]; then
    echo "export SDK_PYTHON=$SDK_PYTHON HELM_BIN_DIR=$HELM_BIN_DIR PROMTOOL_BIN_DIR=$PROMTOOL_BIN_DIR GITOPS_VERDICTS=$GITOPS_VERDICTS"
    echo "export PROMETHEUS_CRDS_DIR=$PROMETHEUS_CRDS_DIR"
    echo "export PATH=$HELM_BIN_DIR:$PROMTOOL_BIN_DIR:\$PATH"
  fi
else
  echo "kube-apiserver, kubectl:  $KUBE_BIN_DIR"
  echo "etcd:                     $ETCD_BIN_DIR"
  if [ "$ALL" = 1 ]; then
    echo "kubelet, kube-controller-manager, kube-scheduler: $KUBE_BIN_DIR"
    echo "python with SDKs:         $SDK_PYTHON"
    echo "helm:                     $HELM_BIN_DIR"
    echo "promtool:                 $PROMTOOL_BIN_DIR"
    echo "gitops-verdicts:          $GITOPS_VERDICTS"
    echo "Prometheus Operator CRDs: $PROMETHEUS_CRDS_DIR"
  fi
fi
