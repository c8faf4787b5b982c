// Command gen writes a development CA and a serving certificate for bulwark's
// webhook Service (`make certs`). In a cluster, use the self-managed or cert-manager
// modes instead; these files are for local runs and for trying the manifests.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwark-dev/bulwark/certs"
)

func main() {
	dir := flag.String("dir", "certs/dev", "output directory")
	service := flag.String("service", "bulwark-webhook", "webhook Service name")
	namespace := flag.String("namespace", "bulwark-system", "webhook Service namespace")
	validity := flag.Duration("validity", 90*24*time.Hour, "certificate validity")
	flag.Parse()
	if err := run(*dir, *service, *namespace, *validity); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
}

func run(dir, service, namespace string, validity time.Duration) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := certs.NewCA("bulwark-dev-ca", validity)
	if err != nil {
		return err
	}
	// The names the API server uses to reach a Service, plus loopback for local runs.
	names := []string{
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		"localhost",
	}
	kp, err := ca.IssueServing(service+"."+namespace+".svc", names, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, validity)
	if err != nil {
		return err
	}
	if _, _, err := kp.WriteFiles(dir, "tls"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s/{ca.crt,tls.crt,tls.key} for %s, valid %s\n", dir, strings.Join(names, ", "), validity)
	return nil
}
