// Command webhook is bulwark's admission webhook server.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
)

func main() {
	// An admission server's heap is small and short-lived; collecting less often
	// buys throughput for a few MiB (docs/benchmarks.md). GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if err := app.NewCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}
