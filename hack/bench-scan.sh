#!/usr/bin/env bash
# bench-scan.sh measures image scanning and the webhook's memory (docs/benchmarks.md,
# "Scanning"), writing raw output to .bench/scan/:
#   1. builds the grype CLI from the module proxy (hack/tools/grype, never the product's
#      go.mod), cached outside the repository keyed by version, as hack/build-tools.sh
#      caches helm and kustomize
#   2. BenchmarkScanDebian (pkg/scan/grype): bulwark's scanner and the grype CLI scan the
#      same Debian-sized image from the same in-process registry with the same database,
#      and must report the same findings                                → go-bench.txt
#   3. hyperfine: the CLI on the same image as an OCI layout on disk, and its start-up
#      alone (`grype version`, `grype db status`)                        → hyperfine.*
#   4. peak RSS (/usr/bin/time -v) of a test process doing only bulwark's scans, and of
#      one CLI scan                                                       → rss-*.txt
#   5. the webhook as shipped (hack/bench-webhook-rss.sh): VmRSS, RssAnon and RssFile
#      idle, every 0.5 s under `loadtest reviews`, and after              → webhook-*.txt
# The targets are benchmarks, not assertions: this script fails when a tool fails, never
# because a figure misses its target. About 3 minutes on 2 cores once grype is built
# (its first build: about 4 minutes).
#
# Knobs (environment): SCAN_N (10) scans per side, WEBHOOK_LOAD (20s) of reviews,
# WEBHOOK_CONCURRENCY (16).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=.bench/scan
mkdir -p "$out/bin"
export SCAN_N=${SCAN_N:-10}
WEBHOOK_LOAD=${WEBHOOK_LOAD:-20s}
WEBHOOK_CONCURRENCY=${WEBHOOK_CONCURRENCY:-16}

log() { printf '\n[bench-scan] %s\n' "$*" >&2; }
# run prints a command, then runs it.
run() { printf '+ %s\n' "$*" >&2; "$@"; }

{
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc:    $(nproc)"
	echo "cpu:      $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "memory:   $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel:   $(uname -sr)"
	echo "go:       $(go version)"
	echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the run)"
	echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
} | tee "$out/machine.txt"

log "1/5 the grype CLI"
GRYPE_VERSION=$(awk '$1=="github.com/anchore/grype" {print $2}' hack/tools/grype/go.mod)
cache=${BULWARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulwark}
grype=$cache/tools/grype-$GRYPE_VERSION/grype
if [ ! -x "$grype" ]; then
	mkdir -p "$(dirname "$grype")"
	log "building grype $GRYPE_VERSION from the module proxy (first run only, about 4 minutes)"
	(cd hack/tools/grype && run env CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$grype.tmp" github.com/anchore/grype/cmd/grype)
	mv "$grype.tmp" "$grype"
fi
echo "grype $GRYPE_VERSION: $grype"
if ! command -v hyperfine >/dev/null; then
	log "hyperfine missing; installing it from Debian"
	apt-get install -y hyperfine >/dev/null || { apt-get update >/dev/null && apt-get install -y hyperfine >/dev/null; }
fi

log "2/5 BenchmarkScanDebian: bulwark's scanner and the grype CLI, $SCAN_N scans each"
run go test -c -o "$out/grype.test" ./pkg/scan/grype
fixture=$root/$out/fixture # db/6 (grype's cache layout), image/ (OCI layout)
BULWARK_GRYPE=$grype BULWARK_BENCH_SCAN_DIR=$fixture \
	run "$out/grype.test" -test.run '^$' -test.bench ScanDebian -test.benchtime "${SCAN_N}x" -test.v |
	tee "$out/go-bench.txt"

# The CLI's environment: the fixture's database, nothing from the network.
cli_env=(env GRYPE_DB_CACHE_DIR="$fixture/db" GRYPE_DB_AUTO_UPDATE=false GRYPE_DB_VALIDATE_AGE=false
	GRYPE_CHECK_FOR_APP_UPDATE=false)

log "3/5 hyperfine: the grype CLI on the image as an OCI layout, and its start-up"
run "${cli_env[@]}" hyperfine -N --warmup 1 --runs "$SCAN_N" --export-csv "$out/hyperfine.csv" \
	--export-json "$out/hyperfine.json" \
	"$grype oci-dir:$fixture/image -o json -q" "$grype db status" "$grype version" |
	tee "$out/hyperfine.txt"

log "4/5 peak RSS: bulwark's scans alone, and one CLI scan"
run /usr/bin/time -v -o "$out/rss-bulwark.txt" \
	"$out/grype.test" -test.run '^$' -test.bench 'ScanDebian/bulwark$' -test.benchtime "${SCAN_N}x" |
	tee "$out/go-bench-rss.txt"
run /usr/bin/time -v -o "$out/rss-grype-cli.txt" "${cli_env[@]}" "$grype" "oci-dir:$fixture/image" -o json -q >/dev/null

log "5/5 the webhook's resident set (hack/bench-webhook-rss.sh)"
OUT=$out bash hack/bench-webhook-rss.sh

log "summary"
{
	awk '
		/^BenchmarkScanDebian\/bulwark-[0-9]/   { b = $3 / 1e9; for (i = 4; i < NF; i++) if ($(i+1) == "peak-RSS-MiB") bp = $i }
		/^BenchmarkScanDebian\/grype-cli-[0-9]/ { g = $3 / 1e9; for (i = 4; i < NF; i++) if ($(i+1) == "peak-RSS-MiB") gp = $i }
		/first scan in this process/             { first = $NF }
		/OpenDB and New/                         { opennew = $NF }
		END {
			printf "cold scan, registry: bulwark %.3f s/scan (DB opened once; OpenDB+New %s, first scan %s), grype CLI %.3f s/scan: ratio %.2f (target <= 0.5)\n", b, opennew, first, g, b / g
			printf "peak RSS during the scans: bulwark process %.0f MiB, grype CLI %.0f MiB\n", bp, gp
		}' "$out/go-bench.txt"
	awk -F, -v b="$(awk '/^BenchmarkScanDebian\/bulwark-[0-9]/ {print $3 / 1e9}' "$out/go-bench.txt")" '
		NR == 2 { printf "grype CLI, OCI layout (hyperfine, %s runs): mean %.3f s, min %.3f s: ratio bulwark/CLI %.2f\n", ENVIRON["SCAN_N"], $2, $7, b / $2 }
		NR == 3 { printf "grype CLI start-up and DB open (`grype db status`): mean %.3f s\n", $2 }' "$out/hyperfine.csv"
	awk '/Maximum resident set size/ {printf "peak RSS (/usr/bin/time -v), whole test process, fixture and %s scans by bulwark: %.0f MiB (target <= 512)\n", ENVIRON["SCAN_N"], $NF/1024}' "$out/rss-bulwark.txt"
	awk '/Maximum resident set size/ {printf "peak RSS (/usr/bin/time -v), one grype CLI scan: %.0f MiB\n", $NF/1024}' "$out/rss-grype-cli.txt"
	cat "$out/webhook-rss.txt"
} | tee "$out/summary.txt"
log "done; results in $out/"
