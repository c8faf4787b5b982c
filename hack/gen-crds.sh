#!/usr/bin/env bash
# gen-crds.sh generates, from the types under api/, their deepcopy methods
# (api/*/zz_generated.deepcopy.go) and the CRDs (deploy/base/crds/), and copies the
# CRDs into the chart's crds/ folder, which Helm installs as it is (`make generate`).
# controller-gen is built from the tools module hack/tools/controller-gen (never the
# product's go.mod) and cached outside the repository, keyed by version, as
# hack/build-tools.sh does for helm and kustomize.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '$1=="sigs.k8s.io/controller-tools" {print $2}' "$root/hack/tools/controller-gen/go.mod")
cache=${BULWARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulwark}
dir=$cache/tools/controller-gen-$version
gen=$dir/controller-gen
if [ ! -x "$gen" ]; then
	mkdir -p "$dir"
	printf '[tools] building controller-gen %s (first run only, about a minute; cached in %s)\n' "$version" "$dir" >&2
	(cd "$root/hack/tools/controller-gen" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/.controller-gen.tmp" sigs.k8s.io/controller-tools/cmd/controller-gen)
	mv "$dir/.controller-gen.tmp" "$gen"
fi

cd "$root"
"$gen" object paths=./api/...

# Generated into a fresh folder, then swapped in whole, so that a CRD whose type was
# removed does not linger in either copy.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$gen" crd paths=./api/... output:crd:dir="$tmp"
for out in deploy/base/crds deploy/helm/bulwark/crds; do
	mkdir -p "$out"
	rm -f "$out"/*.yaml
	cp "$tmp"/*.yaml "$out"/
done
