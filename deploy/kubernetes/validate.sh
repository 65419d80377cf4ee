#!/usr/bin/env bash
# Validates the Kubernetes manifests here against the API schemas of a
# Kubernetes version (strict: unknown fields are errors), offline, with
# kubernetes-validate from PyPI, installed on first use into
# ~/.cache/sluice/kubernetes-validate-venv.
#
# Usage: deploy/kubernetes/validate.sh [KUBERNETES_VERSION]   (default 1.30,
# the oldest with the preStop `sleep` action these manifests use)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=${1:-1.30}
venv=${SLUICE_CACHE_DIR:-$HOME/.cache/sluice}/kubernetes-validate-venv
validator=$venv/bin/kubernetes-validate

if [[ ! -x $validator ]]; then
    echo "validate: installing kubernetes-validate into $venv" >&2
    python3 -m venv "$venv" || { echo "validate: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
    "$venv/bin/pip" install --quiet 'kubernetes-validate==1.37.0'
fi

manifests=()
for file in "$here"/*.yaml; do
    # kustomization.yaml is kustomize's, not a Kubernetes object.
    [[ $(basename "$file") == kustomization.yaml ]] || manifests+=("$file")
done
"$validator" --strict --quiet --kubernetes-version "$version" "${manifests[@]}"
echo "validate: ${#manifests[@]} manifests valid for Kubernetes $version"
