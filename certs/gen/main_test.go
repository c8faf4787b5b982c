package main

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestServingCertificateHasTheServiceNamesAndVerifies(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, "bulwark-webhook", "bulwark-system", time.Hour); err != nil {
		t.Fatal(err)
	}
	read := func(name string) *x509.Certificate {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, serving := read("ca.crt"), read("tls.crt")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, name := range []string{"bulwark-webhook.bulwark-system.svc", "bulwark-webhook.bulwark-system.svc.cluster.local", "localhost"} {
		if _, err := serving.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !slices.ContainsFunc(serving.IPAddresses, func(ip net.IP) bool { return ip.IsLoopback() }) {
		t.Error("no IP SANs for local runs")
	}
	if info, err := os.Stat(filepath.Join(dir, "tls.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("tls.key mode %v, %v; want 0600", info.Mode(), err)
	}
}
