#!/usr/bin/env bash
# demo.sh brings bulwark up on a local control plane and shows it admitting, hardening
# and denying the manifests in deploy/samples (`make demo`), or stops everything it
# started (`make demo-down`). The work is done by hack/demo (a Go program); this
# script builds what it needs, with progress, since a first build takes minutes.
#
#   hack/demo.sh up     build (once) and start the control plane and the webhook, register
#                       the webhook, apply the samples; when already up, show them again
#   hack/demo.sh down   stop the webhook and the control plane; .demo/ keeps the logs
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '==> %s\n' "$*"; }

# gobuild OUT PACKAGE builds like `make build`, printing a line every 30s: a first
# build of the webhook's dependencies takes minutes on 2 cores and is silent.
gobuild() {
	local out=$1 pkg=$2 start=$SECONDS ticker rc=0
	# The ticker's sleep is waited for in the background, so that TERM ends it too
	# and no sleep is left behind.
	(
		trap 'kill "$nap" 2>/dev/null; wait "$nap"; exit 0' TERM
		while :; do
			sleep 30 &
			nap=$!
			wait "$nap"
			printf '    ... still building %s (%ss)\n' "$out" $((SECONDS - start))
		done
	) &
	ticker=$!
	CGO_ENABLED=0 go build -trimpath -o "$out" "$pkg" || rc=$?
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	return "$rc"
}

up() {
	say "Control plane binaries: etcd, kube-apiserver, kube-controller-manager, kubectl"
	echo "    the first run builds them from source (about 15 min on 2 cores, progress below);"
	echo "    later runs use the cache at once"
	local assets
	assets=$(bash hack/build-controlplane.sh)
	echo "    ready in $assets"

	say "Building bin/webhook and bin/bulwark-demo (the first build takes a few minutes)"
	gobuild bin/webhook ./cmd/webhook
	gobuild bin/bulwark-demo ./hack/demo
	echo "    done"
	exec bin/bulwark-demo up --assets "$assets" --webhook bin/webhook
}

down() {
	# Nothing recorded: nothing to stop, and no need to build anything.
	if [ ! -e .demo/cluster/pids ] && [ ! -e .demo/state.json ]; then
		echo "bulwark demo: nothing is running"
		return 0
	fi
	gobuild bin/bulwark-demo ./hack/demo
	exec bin/bulwark-demo down
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac
