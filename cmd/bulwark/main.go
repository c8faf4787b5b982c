// Command bulwark runs bulwark's admission decisions offline, for CI: `bulwark check`
// judges manifests with the webhook's own handlers; `bulwark policy` validates a
// policy file or prints the defaults.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
