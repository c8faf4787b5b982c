#!/usr/bin/env bash
# build-controlplane.sh builds etcd, kube-apiserver, kube-controller-manager and kubectl from the
# Go module proxy (tools modules under hack/tools, never the product's go.mod) and caches
# them outside the repository, keyed by version. It prints the asset directory on stdout;
# progress goes to stderr. A second run with the binaries present returns at once.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$(dirname "$0")/tools/etcd/go.mod")
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${BULWARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulwark}
assets=$cache/controlplane/kube-$KUBE_VERSION-etcd-$ETCD_VERSION

log() { printf '[controlplane] %s\n' "$*" >&2; }

build() { # build NAME MODULE_DIR PACKAGE MINUTES
	local name=$1 dir=$2 pkg=$3 minutes=$4
	if [ -x "$assets/$name" ]; then return; fi
	log "building $name from $pkg (first run only; about $minutes min on 2 cores, cached afterwards in $assets)"
	local start=$SECONDS tmp="$assets/.$name.tmp"
	# Progress for a build that is otherwise silent for minutes.
	( while sleep 30; do log "  … still building $name ($((SECONDS - start))s)"; done ) &
	local ticker=$!
	trap 'pkill -P $ticker 2>/dev/null; kill $ticker 2>/dev/null || true' RETURN
	(cd "$root/hack/tools/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp" "$pkg")
	mv "$tmp" "$assets/$name"
	log "built $name in $((SECONDS - start))s"
}

mkdir -p "$assets"
build etcd etcd go.etcd.io/etcd/server/v3 1
build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver 8
build kube-controller-manager kube k8s.io/kubernetes/cmd/kube-controller-manager 5
build kubectl kube k8s.io/kubernetes/cmd/kubectl 3
echo "$assets"
