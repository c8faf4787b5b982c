package wire

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/tests/oci"
)

func TestRegistryRoots(t *testing.T) {
	dir := t.TempDir()
	if roots, err := RegistryRoots(""); roots != nil || err != nil {
		t.Errorf(`RegistryRoots("") = %v, %v; want the system roots (nil), no error`, roots, err)
	}
	if _, err := RegistryRoots(filepath.Join(dir, "missing.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RegistryRoots(junk); err == nil || !strings.Contains(err.Error(), "no PEM certificate in "+junk) {
		t.Errorf("file without a certificate: %v", err)
	}
	reg := oci.NewRegistry(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, reg.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	roots, err := RegistryRoots(ca)
	if err != nil {
		t.Fatal(err)
	}
	// The registry's certificate verifies against the roots.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get("https://" + reg.Host + "/v2/")
	if err != nil {
		t.Fatalf("TLS to the registry with these roots: %v", err)
	}
	resp.Body.Close()
}
