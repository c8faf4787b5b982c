#!/usr/bin/env bash
# build-tools.sh builds helm and kustomize from the Go module proxy (tools modules
# under hack/tools, never the product's go.mod) and caches them outside the
# repository, keyed by version. It prints the directory on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version() { awk -v m="$1" '$1==m {print $2}' "$root/hack/tools/$2/go.mod"; }
HELM_VERSION=$(version helm.sh/helm/v3 helm)
KUSTOMIZE_VERSION=$(version sigs.k8s.io/kustomize/kustomize/v5 kustomize)
cache=${BULWARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulwark}
dir=$cache/tools/helm-$HELM_VERSION-kustomize-$KUSTOMIZE_VERSION
mkdir -p "$dir"
build() { # build NAME MODULE_DIR PACKAGE
	[ -x "$dir/$1" ] && return
	printf '[tools] building %s from %s (first run only, about a minute; cached in %s)\n' "$1" "$3" "$dir" >&2
	(cd "$root/hack/tools/$2" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/.$1.tmp" "$3")
	mv "$dir/.$1.tmp" "$dir/$1"
}
build helm helm helm.sh/helm/v3/cmd/helm
build kustomize kustomize sigs.k8s.io/kustomize/kustomize/v5
echo "$dir"
