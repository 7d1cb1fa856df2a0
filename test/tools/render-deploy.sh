#!/usr/bin/env bash
# Renders every kustomization under deploy/ (the base and each overlay; not the vendored
# CRDs in deploy/crds, applied for real by the audit e2e) with the pinned
# kustomize, and the Helm chart (deploy/helm/imagegate) with its default values and each
# ci/*-values.yaml after `helm lint --strict`, then checks the result and the control-plane
# files (test/tools/check-deploy.mjs). Fails on any lint, render or check error.
# `make deploy-check` installs kustomize and Helm and runs this.
#
#   KUSTOMIZE=path/to/kustomize  (default .tools/bin/kustomize)
#   HELM=path/to/helm            (default .tools/bin/helm)
#   RENDER_DIR=where the rendered YAML goes  (default .tools/deploy-render)
set -euo pipefail
cd "$(dirname "$0")/../.."

kustomize="${KUSTOMIZE:-.tools/bin/kustomize}"
helm="${HELM:-.tools/bin/helm}"
out="${RENDER_DIR:-.tools/deploy-render}"
for tool in "$kustomize" "$helm"; do
  if [[ ! -x "$tool" ]]; then
    echo "render-deploy: no $tool; \`make deploy-check\` installs the pinned one" >&2
    exit 2
  fi
done
echo "render-deploy: kustomize $("$kustomize" version), helm $("$helm" version --short)"

rm -rf "$out"
mkdir -p "$out"
rendered=()
while IFS= read -r file; do
  dir="$(dirname "$file")"
  name="${dir#deploy/}"
  name="${name//\//-}"
  echo "render-deploy: kustomize build $dir"
  if ! "$kustomize" build "$dir" >"$out/$name.yaml"; then
    echo "render-deploy: kustomize build $dir failed" >&2
    exit 1
  fi
  rendered+=("$name=$out/$name.yaml")
done < <(find deploy -name kustomization.yaml -not -path '*/generated/*' -not -path '*/components/*' -not -path 'deploy/crds/*' | LC_ALL=C sort)

chart=deploy/helm/imagegate
for values in "" "$chart"/ci/*-values.yaml; do
  name=helm-$(basename "${values:-default}" -values.yaml)
  args=(${values:+-f "$values"})
  echo "render-deploy: helm lint --strict $chart ${args[*]}"
  "$helm" lint --strict --quiet "$chart" "${args[@]}" >/dev/null || {
    "$helm" lint --strict "$chart" "${args[@]}" >&2
    exit 1
  }
  echo "render-deploy: helm template $chart ${args[*]}"
  if ! "$helm" template imagegate "$chart" --namespace imagegate-system "${args[@]}" >"$out/$name.yaml"; then
    echo "render-deploy: helm template $chart ${args[*]} failed" >&2
    exit 1
  fi
  rendered+=("$name=$out/$name.yaml")
done

if [[ ${#rendered[@]} -eq 0 ]]; then
  echo "render-deploy: no kustomization.yaml under deploy/" >&2
  exit 1
fi

# The base must be checked first: the control-plane files are compared with its Service.
ci=()
[[ "${CI:-}" == "true" ]] && ci=(--ci)
node test/tools/check-deploy.mjs "${ci[@]}" --control-plane deploy/control-plane "${rendered[@]}"
