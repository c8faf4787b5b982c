// Command webhook is bulwark's admission webhook server.
package main

import (
	"os"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
)

func main() {
	if err := app.NewCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
