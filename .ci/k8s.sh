#!/usr/bin/env bash
# The platform's Kubernetes manifests, validated offline: every object against the Kubernetes
# API schemas (kubernetes-validate, strict) and the checkov policies (any failed check fails CI;
# a skipped one must carry its reason in the manifest). Both tools come from PyPI, pinned.
# Used by .ci/run; by hand: bash .ci/k8s.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${K8S_VENV:-${HOME:-/tmp}/.cache/kamiyo-k8s}"
if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==1.37.0" "checkov==3.3.30"
fi
dir=deploy/kubernetes
manifests=$(ls "$dir"/*.yaml | grep -v kustomization.yaml)
# shellcheck disable=SC2086
"$venv/bin/kubernetes-validate" --kubernetes-version 1.31.0 --strict $manifests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# checkov's stderr is its attempt to reach its vendor's API (no network here); shown on failure.
if ! "$venv/bin/checkov" -d "$dir" --framework kubernetes --compact --quiet --skip-download 2>"$log"; then
  cat "$log" >&2
  exit 1
fi
