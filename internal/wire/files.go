package wire

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// LoadPolicy reads and parses the policy file at path (at most
// policy.MaxPolicyBytes).
func LoadPolicy(path string) (*policy.Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte over the limit is enough for Parse to report the size.
	data, err := io.ReadAll(io.LimitReader(f, policy.MaxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	return policy.Parse(data)
}

// RegistryRoots returns the system roots plus the PEM certificates in file, the
// CAs registries are verified against; nil (the system roots) when file is "".
func RegistryRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return roots, nil
}
