package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/certs"
)

// certValidity is how long the load tool's serving certificate is valid.
const certValidity = 24 * time.Hour

func newCertsCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Write a fresh CA (ca.crt) and a serving certificate for 127.0.0.1 (tls.crt, tls.key) into --dir",
		Long: `certs writes what a webhook under test needs to serve TLS on 127.0.0.1, and what
'loadtest reviews --ca' needs to trust it:

  loadtest certs --dir .bench/tls
  webhook --bind-address 127.0.0.1:0 --tls-cert-file .bench/tls/tls.crt --tls-key-file .bench/tls/tls.key --policy deploy/base/policy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := writeCerts(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ca=%s\ncert=%s\nkey=%s\n", files.ca, files.cert, files.key)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write ca.crt, tls.crt and tls.key to")
	return cmd
}

type certFiles struct{ ca, cert, key string }

// writeCerts writes a fresh CA and a serving certificate for 127.0.0.1 it signed
// into dir.
func writeCerts(dir string) (certFiles, error) {
	var f certFiles
	if dir == "" {
		return f, fmt.Errorf("--dir: required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	ca, err := certs.NewCA("bulwark-loadtest-ca", certValidity)
	if err != nil {
		return f, err
	}
	kp, err := ca.IssueServing("bulwark-webhook", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, certValidity)
	if err != nil {
		return f, err
	}
	if f.cert, f.key, err = kp.WriteFiles(dir, "tls"); err != nil {
		return f, err
	}
	f.ca = filepath.Join(dir, "ca.crt")
	return f, os.WriteFile(f.ca, ca.CertPEM, 0o644)
}
