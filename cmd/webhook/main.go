// Command webhook is bulwark's admission webhook server.
package main

import (
	"fmt"
	"os"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
)

func main() {
	if err := app.NewCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}
