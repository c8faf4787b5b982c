#!/usr/bin/env bash
# bench.sh measures bulwark (`make bench`; docs/benchmarks.md records the results):
#   1. Go benchmarks of pkg/policy and pkg/admission              → .bench/go-bench.txt
#   2. the webhook binary pinned to ONE core (taskset -c 0, GOMAXPROCS=1) under
#      AdmissionReviews replayed by bin/loadtest on the other core → .bench/reviews-*
#   3. pod creation through a local kube-apiserver without and with the webhook
#      registered (bin/loadtest apiserver)                          → .bench/apiserver.*
#      and again with pods that need no patch (--hardened)          → .bench/apiserver-hardened.*
# The targets are benchmarks, not assertions: this script fails when a tool fails,
# never because a figure misses its target. About 3 minutes on 2 cores.
#
# Knobs (environment): BENCH_COUNT (5), REVIEWS_DURATION (10s), REVIEWS_CONCURRENCY (16),
# APISERVER_PODS (1000), APISERVER_CONCURRENCY (1,8), APISERVER_ROUNDS (4).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. hack/webhook-addr.sh
out=.bench
mkdir -p "$out" bin
BENCH_COUNT=${BENCH_COUNT:-5}
REVIEWS_DURATION=${REVIEWS_DURATION:-10s}
REVIEWS_CONCURRENCY=${REVIEWS_CONCURRENCY:-16}
APISERVER_PODS=${APISERVER_PODS:-1000}
APISERVER_CONCURRENCY=${APISERVER_CONCURRENCY:-1,8}
APISERVER_ROUNDS=${APISERVER_ROUNDS:-4}

log() { printf '\n[bench] %s\n' "$*" >&2; }

machine() {
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc:    $(nproc)"
	echo "cpu:      $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "kernel:   $(uname -sr)"
	echo "go:       $(go version)"
	echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the run)"
	echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
}
machine | tee "$out/machine.txt"

log "1/3 Go benchmarks (count $BENCH_COUNT)"
go test -run '^$' -bench . -benchmem -count "$BENCH_COUNT" ./pkg/... | tee "$out/go-bench.txt"

log "building bin/loadtest, bin/webhook (as released: -tags noscanner) and bin/bulwark"
CGO_ENABLED=0 go build -tags noscanner -trimpath -o bin/ ./cmd/loadtest ./cmd/webhook ./cmd/bulwark

log "2/3 reviews against the webhook on one core"
if ! command -v taskset >/dev/null; then
	log "taskset missing; installing util-linux"
	apt-get install -y util-linux >/dev/null
fi
server_cpu=(taskset -c 0)
client_cpu=(taskset -c 1)
if [ "$(nproc)" -lt 2 ]; then
	log "only $(nproc) CPU: server and load generator share it; the one-core figure is not meaningful"
	client_cpu=(taskset -c 0)
fi
bin/loadtest certs --dir "$out/tls" >/dev/null
webhook_pid=
stop_webhook() {
	if [ -n "$webhook_pid" ]; then
		kill "$webhook_pid" 2>/dev/null || true
		wait "$webhook_pid" 2>/dev/null || true
		webhook_pid=
	fi
}
trap stop_webhook EXIT
"${server_cpu[@]}" env GOMAXPROCS=1 bin/webhook --bind-address 127.0.0.1:0 \
	--tls-cert-file "$out/tls/tls.crt" --tls-key-file "$out/tls/tls.key" \
	--policy deploy/base/policy.yaml 2>"$out/webhook.log" &
webhook_pid=$!
addr=$(webhook_addr "$out/webhook.log" "$webhook_pid")

reviews() { # reviews NAME ARGS…
	local name=$1
	shift
	"${client_cpu[@]}" bin/loadtest reviews --url "https://$addr" --ca "$out/tls/ca.crt" \
		--server-pid "$webhook_pid" --json "$out/reviews-$name.json" "$@" | tee "$out/reviews-$name.txt"
}
# Latency of a lone review, then throughput with enough connections to keep the
# server's core busy; the apiserver sends both stages for every pod.
reviews validate-c1 --path /validate --concurrency 1 --duration 5s
reviews validate --path /validate --concurrency "$REVIEWS_CONCURRENCY" --duration "$REVIEWS_DURATION"
reviews mutate --path /mutate --concurrency "$REVIEWS_CONCURRENCY" --duration "$REVIEWS_DURATION"
stop_webhook
# The webhook logs one Decision line per review; keep them, compressed.
gzip -f "$out/webhook.log"

log "3/3 pods through kube-apiserver, without and with the webhook"
BULWARK_ASSETS=$(bash hack/build-controlplane.sh)
export BULWARK_ASSETS
bin/loadtest apiserver --pods "$APISERVER_PODS" --concurrency "$APISERVER_CONCURRENCY" --rounds "$APISERVER_ROUNDS" \
	--json "$out/apiserver.json" | tee "$out/apiserver.txt"
log "3/3 again, pods already hardened: the mutating webhook returns no patch"
bin/loadtest apiserver --pods "$APISERVER_PODS" --concurrency 1 --rounds "$APISERVER_ROUNDS" --hardened \
	--json "$out/apiserver-hardened.json" | tee "$out/apiserver-hardened.txt"

log "4/4 bulwark check over a directory of 1,000 manifests (3 runs)"
rm -rf "$out/manifests"
bash hack/gen-manifests.sh "$out/manifests" 1000
for _ in 1 2 3; do
	start=$(date +%s.%N)
	# Exit code 1: some generated manifests are denied, on purpose.
	bin/bulwark check -f "$out/manifests" -o json >"$out/check.json" || [ $? -eq 1 ]
	awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "bulwark check, 1000 manifests: %.3f s\n", e - s }'
done | tee "$out/check.txt"

log "done; results in $out/ (machine.txt, go-bench.txt, reviews-*.txt|json, apiserver*.txt|json, check.txt, webhook.log.gz)"
