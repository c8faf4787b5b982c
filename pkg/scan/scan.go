// Package scan owns what bulwark knows about an image's known vulnerabilities:
// the Scanner interface, the Report it returns, severities and the resource
// limits every scan is held to. Implementations live in subpackages (grype).
//
// It must not import a scanner library (grype, syft: every package that does
// links more than 100 MB), must not decide what a finding means for admission
// (pkg/policy does) and does no I/O.
package scan

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Scanner reports the known vulnerabilities of one image, identified by digest.
type Scanner interface {
	Scan(ctx context.Context, req Request) (*Report, error)
}

// Request is one image to scan and how to reach it.
type Request struct {
	// Image is the image (or index) to scan, pinned by digest.
	Image name.Digest
	// Platforms selects the manifests of an index to scan: each one present is
	// scanned, those absent are skipped (an index with none of them is an error).
	// Nil means DefaultPlatforms. A single-platform image is scanned whatever it
	// is built for.
	Platforms []v1.Platform
	// Remote reaches the registry: the guarded transport and credentials from
	// pkg/registry ((*registry.Client).RemoteOptions). The scanner adds only its
	// own context; without a transport option ggcr would use its default
	// transport, outside the egress guard.
	Remote []remote.Option
	// Limits bound the work; zero fields take the defaults (see Limits).
	Limits Limits
}

// DefaultPlatforms are scanned when a Request names none.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// Report is what a scan found in one image.
type Report struct {
	// Image is repo@sha256:… as scanned.
	Image string
	// Platforms are the platforms scanned ("linux/amd64", "linux/arm64/v8").
	Platforms []string
	// Scanner names the scanner and its version, e.g. "grype v0.121.2".
	Scanner string
	// DBBuilt is when the vulnerability database used was built.
	DBBuilt time.Time
	// ScannedAt is when the scan finished.
	ScannedAt time.Time
	// Findings are sorted by severity (highest first), then CVSS (highest
	// first), then ID, package and platform.
	Findings []Finding
	// Omitted counts findings left out of Findings (an ImageScan lists at most
	// 200); they cannot be judged one by one.
	Omitted int
}

// Finding is one known vulnerability of one package on one platform.
type Finding struct {
	// ID is the vulnerability's identifier, e.g. CVE-2024-1234 or GHSA-….
	ID       string
	Severity Severity
	// CVSS is the CVSS base score, 0 when the database has none.
	CVSS float64
	// Package, Type ("apk", "deb", "go-module", …) and Installed (version)
	// identify the vulnerable package.
	Package, Type, Installed string
	// FixedIn is the version(s) that fix it, "" when there is no fix.
	FixedIn string
	// Platform is the platform of the manifest the package was found in.
	Platform string
}

// Severity is a vulnerability's qualitative severity.
type Severity string

// Severities, from highest to lowest.
const (
	SeverityCritical   Severity = "Critical"
	SeverityHigh       Severity = "High"
	SeverityMedium     Severity = "Medium"
	SeverityLow        Severity = "Low"
	SeverityNegligible Severity = "Negligible"
	SeverityUnknown    Severity = "Unknown"
)

var ranks = map[Severity]int{
	SeverityCritical:   5,
	SeverityHigh:       4,
	SeverityMedium:     3,
	SeverityLow:        2,
	SeverityNegligible: 1,
	SeverityUnknown:    0,
}

// Rank orders severities for comparison: Critical 5 down to Negligible 1;
// Unknown and anything unrecognised rank 0.
func (s Severity) Rank() int { return ranks[s] }

// ParseSeverity parses a severity name, case-insensitively ("critical",
// "High"…); anything else is an error.
func ParseSeverity(s string) (Severity, error) {
	for sev := range ranks {
		if strings.EqualFold(s, string(sev)) {
			return sev, nil
		}
	}
	return SeverityUnknown, fmt.Errorf("unknown severity %q: want Critical, High, Medium, Low, Negligible or Unknown", s)
}

// SortFindings sorts findings as Report.Findings are: severity (highest first),
// CVSS (highest first), then ID, package, installed version and platform.
func SortFindings(findings []Finding) {
	slices.SortFunc(findings, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(b.Severity.Rank(), a.Severity.Rank()),
			cmp.Compare(b.CVSS, a.CVSS),
			strings.Compare(a.ID, b.ID),
			strings.Compare(a.Package, b.Package),
			strings.Compare(a.Installed, b.Installed),
			strings.Compare(a.Platform, b.Platform),
		)
	})
}
