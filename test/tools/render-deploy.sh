#!/usr/bin/env bash
# Renders every kustomization under deploy/ (the base and each overlay) with the pinned
# kustomize, then checks the result and the control-plane files (test/tools/check-deploy.mjs).
# Fails on any render or check error. `make deploy-check` installs kustomize and runs this.
#
#   KUSTOMIZE=path/to/kustomize  (default .tools/bin/kustomize)
#   RENDER_DIR=where the rendered YAML goes  (default .tools/deploy-render)
set -euo pipefail
cd "$(dirname "$0")/../.."

kustomize="${KUSTOMIZE:-.tools/bin/kustomize}"
out="${RENDER_DIR:-.tools/deploy-render}"
if [[ ! -x "$kustomize" ]]; then
  echo "render-deploy: no kustomize at $kustomize; \`make deploy-check\` installs the pinned one" >&2
  exit 2
fi
echo "render-deploy: $("$kustomize" version)"

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
done < <(find deploy -name kustomization.yaml -not -path '*/generated/*' -not -path '*/components/*' | LC_ALL=C sort)

if [[ ${#rendered[@]} -eq 0 ]]; then
  echo "render-deploy: no kustomization.yaml under deploy/" >&2
  exit 1
fi

# The base must be checked first: the control-plane files are compared with its Service.
ci=()
[[ "${CI:-}" == "true" ]] && ci=(--ci)
node test/tools/check-deploy.mjs "${ci[@]}" --control-plane deploy/control-plane "${rendered[@]}"
