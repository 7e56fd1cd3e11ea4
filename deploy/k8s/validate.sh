#!/usr/bin/env bash
# Offline validation of cohort's Kubernetes manifests (ctest k8s_manifests, label k8s):
#  1. yamllint on every YAML source under deploy/k8s (config: the repository's .yamllint);
#  2. `kubectl kustomize` renders the base and every overlay (offline: no cluster needed);
#  3. validate/validate.mjs checks every rendered object: the Kubernetes OpenAPI schemas
#     (kubernetes-models), unknown fields, the LeaderWorkerSet against a hand-written partial
#     schema, the ServiceMonitors against the Prometheus Operator's schemas, and this project's
#     conventions (labels, requests, non-root, capabilities);
#  4. the validator's own test: each validate/testdata/broken-*.yaml must be refused.
# Needs kubectl, node, yamllint and validate/node_modules (deploy/install-deps.sh installs the
# last two). Usage: deploy/k8s/validate.sh [WORK_DIR]  (rendered YAML is left in WORK_DIR)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"

missing=0
for tool in kubectl node yamllint; do
  if ! command -v "$tool" >/dev/null; then
    echo "validate.sh: '$tool' not found (deploy/install-deps.sh installs yamllint; kubectl and" \
         "node 20 are expected on the machine)" >&2
    missing=1
  fi
done
if [[ ! -d "$here/validate/node_modules/kubernetes-models" ]]; then
  echo "validate.sh: $here/validate/node_modules missing: run deploy/install-deps.sh" >&2
  missing=1
fi
[[ $missing -eq 0 ]] || exit 1

echo "== yamllint"
(cd "$repo" && yamllint --strict -c .yamllint .yamllint deploy/k8s)

echo "== kubectl kustomize"
rendered=()
for dir in "$here/base" "$here"/overlays/*/; do
  name=$(basename "$dir")
  out="$work/$name.yaml"
  kubectl kustomize "$dir" > "$out"
  echo "rendered $name: $(grep -c '^kind:' "$out") objects"
  rendered+=("$out")
done

echo "== validate.mjs (rendered)"
node "$here/validate/validate.mjs" "${rendered[@]}"

echo "== validate.mjs refuses each broken manifest (validate/testdata)"
node "$here/validate/validate.mjs" --each-must-fail "$here"/validate/testdata/broken-*.yaml
