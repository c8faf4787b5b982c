#!/usr/bin/env bash
# bench-webhook-rss.sh measures the webhook's resident set as shipped (make release:
# -tags noscanner -trimpath -ldflags='-s -w'; the default policy, no kubeconfig):
# VmRSS, RssAnon and RssFile idle, every 0.5 s under `loadtest reviews`, and 5 s
# after (docs/benchmarks.md). hack/bench-scan.sh runs it as its last step.
#
#   bash hack/bench-webhook-rss.sh        → .bench/rss/webhook-rss.txt
#
# Knobs (environment): WEBHOOK_LOAD (20s) of reviews, WEBHOOK_CONCURRENCY (16),
# WEBHOOK_TAGS (noscanner; empty measures the build with the embedded scanner
# linked in), GOGC (unset: the binary's own default).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. hack/webhook-addr.sh
out=${OUT:-.bench/rss}
mkdir -p "$out/bin"
WEBHOOK_LOAD=${WEBHOOK_LOAD:-20s}
WEBHOOK_CONCURRENCY=${WEBHOOK_CONCURRENCY:-16}
WEBHOOK_TAGS=${WEBHOOK_TAGS-noscanner}

log() { printf '\n[bench-webhook-rss] %s\n' "$*" >&2; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }

log "the webhook's resident set (tags '$WEBHOOK_TAGS'), idle, under $WEBHOOK_LOAD of reviews, and after"
run env CGO_ENABLED=0 go build -tags "$WEBHOOK_TAGS" -trimpath -ldflags='-s -w' -o "$out/bin/" ./cmd/loadtest ./cmd/webhook
ls -l "$out/bin/webhook" | awk '{printf "webhook binary: %.1f MiB\n", $5 / 1048576}' | tee "$out/webhook-size.txt"
"$out/bin/loadtest" certs --dir "$out/tls" >/dev/null
webhook_pid=
sampler_pid=
stop() {
	[ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
	if [ -n "$webhook_pid" ]; then
		kill "$webhook_pid" 2>/dev/null || true
		wait "$webhook_pid" 2>/dev/null || true
	fi
}
trap stop EXIT
webhook=("$out/bin/webhook" --bind-address 127.0.0.1:0 --tls-cert-file "$out/tls/tls.crt" --tls-key-file "$out/tls/tls.key"
	--policy deploy/base/policy.yaml)
printf '+ %s 2>%s &\n' "${webhook[*]}" "$out/webhook.log" >&2
"${webhook[@]}" 2>"$out/webhook.log" & # not through run: $! must be the webhook's pid
webhook_pid=$!
addr=$(webhook_addr "$out/webhook.log" "$webhook_pid")
# rss prints the webhook's VmRSS, RssAnon (heap, stacks) and RssFile (pages of the
# binary), in kB.
rss() { awk '$1 == "VmRSS:" {r = $2} $1 == "RssAnon:" {a = $2} $1 == "RssFile:" {f = $2} END {print r, a, f}' "/proc/$webhook_pid/status"; }
sleep 2
idle=$(rss)
(while sleep 0.5; do rss; done >"$out/webhook-rss-during.txt") &
sampler_pid=$!
run "$out/bin/loadtest" reviews --url "https://$addr" --ca "$out/tls/ca.crt" --server-pid "$webhook_pid" \
	--path /validate --concurrency "$WEBHOOK_CONCURRENCY" --duration "$WEBHOOK_LOAD" \
	--json "$out/webhook-reviews.json" | tee "$out/webhook-reviews.txt"
kill "$sampler_pid"
sampler_pid=
sleep 5
after=$(rss)
hwm=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$webhook_pid/status")
stop
webhook_pid=
gzip -f "$out/webhook.log"
sort -n "$out/webhook-rss-during.txt" | awk -v idle="$idle" -v after="$after" -v hwm="$hwm" '
	function mib(kb) { return kb / 1024 }
	function show(what, s, f) { split(s, f, " "); printf "%s %.1f MiB (anon %.1f, file %.1f)", what, mib(f[1]), mib(f[2]), mib(f[3]) }
	{ n++; s[n] = $1; max = $0 }
	END {
		printf "webhook VmRSS: "; show("idle", idle)
		printf "; under load (%d samples) median %.1f MiB, ", n, mib(s[int((n + 1) / 2)]); show("max", max)
		printf "; "; show("5 s after", after); printf "; VmHWM %.1f MiB\n", mib(hwm)
	}' | tee "$out/webhook-rss.txt"
