#!/usr/bin/env bash
# Validates the Kubernetes manifests here against the API schemas of a
# Kubernetes version (strict: unknown fields are errors), offline, with
# kubernetes-validate from PyPI, pinned in requirements.txt here and
# installed on first use by `deploy/install.sh kubernetes`:
#   - every file here and in secured/ (the component's patches are written as
#     whole objects, so they validate on their own);
#   - with kubectl (its built-in kustomize), the manifests as applied: this
#     directory as it is, and with the secured/ component switched on. Those
#     renderings are also checked by check_files.py: each SLUICE_*_FILE
#     setting must name a key of a mounted Secret or ConfigMap, since a
#     service stops at startup on a missing file.
#
# Usage: deploy/kubernetes/validate.sh [KUBERNETES_VERSION]   (default 1.30,
# the oldest with the preStop `sleep` action these manifests use)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=${1:-1.30}
"$here/../install.sh" kubernetes >&2
venv=${SLUICE_KUBERNETES_VALIDATE_VENV:-$HOME/.cache/sluice/kubernetes-validate-venv}
validate=("$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version")

manifests=()
for file in "$here"/*.yaml "$here"/secured/*.yaml; do
    # kustomization.yaml is kustomize's, not a Kubernetes object.
    [[ $(basename "$file") == kustomization.yaml ]] || manifests+=("$file")
done
"${validate[@]}" "${manifests[@]}"
echo "validate: ${#manifests[@]} manifests valid for Kubernetes $version"

if ! command -v kubectl >/dev/null; then
    echo "validate: kubectl not found, so the kustomize renderings (plain and secured) were not checked"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy with the secured component switched on, as its comment says to.
cp -r "$here" "$work/secured-on"
sed -i 's/^# components:$/components:/; s/^#   - secured$/  - secured/' "$work/secured-on/kustomization.yaml"
grep -q '^  - secured$' "$work/secured-on/kustomization.yaml" || {
    echo "validate: kustomization.yaml no longer has the commented '# components:' / '#   - secured' lines" >&2
    exit 1
}
for variant in plain secured; do
    case $variant in
    plain) root=$here ;;
    secured) root=$work/secured-on ;;
    esac
    rendered=$work/$variant.yaml
    kubectl kustomize "$root" >"$rendered"
    "${validate[@]}" "$rendered"
    "$venv/bin/python" "$here/check_files.py" "$variant" <"$rendered"
    echo "validate: kustomize rendering ($variant) valid for Kubernetes $version"
done
