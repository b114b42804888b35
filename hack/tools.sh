#!/usr/bin/env bash
# Builds or installs every tool the tests and the demo need, each skipped when already present.
# Prints where they are; with --env prints `export` lines for the test run instead.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# --node: also kubelet, kube-controller-manager, kube-scheduler for the local nodes (make e2e).
KUBE_BIN_DIR=$("$ROOT/hack/k8s-bins/build.sh" --node)
ETCD_BIN_DIR=$("$ROOT/hack/etcd/build.sh")
SDK_PYTHON=$("$ROOT/hack/python-venv.sh")
HELM_BIN_DIR=$("$ROOT/hack/helm/build.sh")
if [ "${1:-}" = "--env" ]; then
  echo "export KUBE_BIN_DIR=$KUBE_BIN_DIR ETCD_BIN_DIR=$ETCD_BIN_DIR SDK_PYTHON=$SDK_PYTHON HELM_BIN_DIR=$HELM_BIN_DIR"
  echo "export PATH=$KUBE_BIN_DIR:$HELM_BIN_DIR:\$PATH"
else
  echo "kube-apiserver, kubectl, kubelet, kube-controller-manager, kube-scheduler: $KUBE_BIN_DIR"
  echo "etcd:                    $ETCD_BIN_DIR"
  echo "python with SDKs:        $SDK_PYTHON"
  echo "helm:                    $HELM_BIN_DIR"
fi
