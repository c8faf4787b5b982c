# webhook_addr LOG PID prints the address the webhook started as PID logs to LOG
# ("Serving" line) once it serves; it fails, showing the log, if the webhook exits
# or does not serve within 10 s. Sourced by hack/bench.sh and hack/bench-webhook-rss.sh.
webhook_addr() {
	local log=$1 pid=$2 addr
	for _ in $(seq 100); do
		addr=$(grep -o '"msg":"Serving","address":"[0-9.:]*"' "$log" | grep -o '127\.0\.0\.1:[0-9]*' || true)
		if [ -n "$addr" ]; then
			echo "$addr"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
		sleep 0.1
	done
	echo "webhook did not start; see $log" >&2
	return 1
}
