#!/usr/bin/env bash
# Validates the Kubernetes manifests here against the API schemas of a
# Kubernetes version (strict: unknown fields are errors), offline, with
# kubernetes-validate from PyPI, pinned in requirements.txt here and
# installed on first use by `deploy/install.sh kubernetes`.
#
# Usage: deploy/kubernetes/validate.sh [KUBERNETES_VERSION]   (default 1.30,
# the oldest with the preStop `sleep` action these manifests use)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=${1:-1.30}
"$here/../install.sh" kubernetes >&2
validator=${SLUICE_KUBERNETES_VALIDATE_VENV:-$HOME/.cache/sluice/kubernetes-validate-venv}/bin/kubernetes-validate

manifests=()
for file in "$here"/*.yaml; do
    # kustomization.yaml is kustomize's, not a Kubernetes object.
    [[ $(basename "$file") == kustomization.yaml ]] || manifests+=("$file")
done
"$validator" --strict --quiet --kubernetes-version "$version" "${manifests[@]}"
echo "validate: ${#manifests[@]} manifests valid for Kubernetes $version"
