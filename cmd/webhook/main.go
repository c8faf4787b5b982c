// Command webhook is bulwark's admission webhook server.
package main

import (
	"fmt"
	"os"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
)

func main() {
	// Go's default GC (GOGC=100) keeps the webhook under 64 MiB resident under
	// load; GOGC=400 buys ≈ 15 % of CPU per review for ≈ 25 MiB more
	// (docs/benchmarks.md). GOGC and GOMEMLIMIT override it as usual.
	if err := app.NewCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}
