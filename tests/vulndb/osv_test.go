package vulndb_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	anchore "github.com/anchore/grype/grype"
	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/matcher"
	grypepkg "github.com/anchore/grype/grype/pkg"
	"github.com/anchore/grype/grype/vulnerability"
	syftpkg "github.com/anchore/syft/syft/pkg"
	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// Real records of the pinned Go vulnerability database, one per shape the
// converter handles.
var osvRecords = []string{
	"GO-2026-6599", // stdlib: two release branches in one range
	"GO-2026-6603", // stdlib twice (one range per branch) and golang.org/x/net
	"GO-2026-6629", // golang.org/x/text, with vulnerable symbols (not read)
	"GO-2026-4529", // cosign v1, v2: every version ("introduced: 0" alone); v3 fixed
	"GO-2026-6173", // withdrawn
	"GO-2024-2858", // +incompatible: custom_ranges restate the versions
}

// writeOSV writes the database of osvRecords and opens it.
func writeOSV(t *testing.T) (v6.Reader, vulndb.OSVStats) {
	t.Helper()
	if testing.Short() {
		t.Skip("reads the pinned golang.org/x/vulndb module (go mod download from the module proxy); not in -short mode")
	}
	src := vulndb.GoVulnDB(t)
	var files []string
	for _, id := range osvRecords {
		files = append(files, filepath.Join(src, id+".json"))
	}
	dir := t.TempDir()
	stats := vulndb.WriteOSV(t, dir, files...)
	r, err := v6.NewReader(v6.Config{DBDirPath: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, stats
}

// TestWriteOSVRecords: what the database holds for real records, as grype
// reads it back.
func TestWriteOSVRecords(t *testing.T) {
	r, stats := writeOSV(t)
	if diff := cmp.Diff(vulndb.OSVStats{Records: 6, Withdrawn: 1, Vulnerabilities: 5, AffectedPackages: 8}, stats); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}

	type rng struct{ Constraint, Fix string }
	fixed := func(c, v string) rng { return rng{c, "fixed " + v} }
	always := []rng(nil) // no range: every version
	for _, tc := range []struct {
		vuln, pkg string
		want      []rng
	}{
		{"GO-2026-6599", "stdlib", []rng{fixed("< 1.26.9", "1.26.9"), fixed(">= 1.27.0-0, < 1.27.2", "1.27.2")}},
		{"GO-2026-6603", "stdlib", []rng{fixed("< 1.26.9", "1.26.9"), fixed(">= 1.27.0-0, < 1.27.2", "1.27.2")}},
		{"GO-2026-6603", "golang.org/x/net", []rng{fixed("< 0.60.0", "0.60.0")}},
		{"GO-2026-6629", "golang.org/x/text", []rng{fixed("< 0.41.0", "0.41.0")}},
		{"GO-2026-4529", "github.com/sigstore/cosign", always},
		{"GO-2026-4529", "github.com/sigstore/cosign/v2", always},
		{"GO-2026-4529", "github.com/sigstore/cosign/v3", []rng{fixed("< 3.0.5", "3.0.5")}},
		{"GO-2024-2858", "github.com/grafana/grafana", []rng{
			fixed(">= 5.0.0-beta1+incompatible, < 8.5.14", "8.5.14"), fixed(">= 9.0.0, < 9.1.8", "9.1.8")}},
		{"GO-2026-6173", "github.com/lib/pq", nil}, // withdrawn: absent
	} {
		t.Run(tc.vuln+" "+tc.pkg, func(t *testing.T) {
			handles, err := r.GetAffectedPackages(&v6.PackageSpecifier{Name: tc.pkg, Ecosystem: "go-module"},
				&v6.GetPackageOptions{PreloadBlob: true, PreloadVulnerability: true, Vulnerabilities: []v6.VulnerabilitySpecifier{{Name: tc.vuln}}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.vuln == "GO-2026-6173" {
				if len(handles) != 0 {
					t.Fatalf("the withdrawn record is in the database: %+v", handles)
				}
				return
			}
			if len(handles) != 1 {
				t.Fatalf("%d affected packages, want 1", len(handles))
			}
			h := handles[0]
			var got []rng
			for _, r := range h.BlobValue.Ranges {
				if r.Version.Type != "go" {
					t.Errorf("range type %q, want go", r.Version.Type)
				}
				fix := string(r.Fix.State)
				if r.Fix.Version != "" {
					fix += " " + r.Fix.Version
				}
				got = append(got, rng{r.Version.Constraint, fix})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ranges (-want +got):\n%s", diff)
			}
			if q := h.BlobValue.Qualifiers; q != nil {
				t.Errorf("qualifiers %+v, want none: matching is by module, not symbol", q)
			}
			v := h.Vulnerability
			if v.Status != v6.VulnerabilityActive || v.Provider.ID != "govulndb" || v.Provider.Version != vulndb.GoVulnDBVersion {
				t.Errorf("vulnerability status %q provider %+v", v.Status, v.Provider)
			}
			if sev := v.BlobValue.Severities; len(sev) != 1 || sev[0].Value != vulndb.DefaultGoSeverity {
				t.Errorf("severities %+v, want the default %q (vuln.go.dev scores nothing)", sev, vulndb.DefaultGoSeverity)
			}
			if !slices.ContainsFunc(v.BlobValue.Aliases, func(a string) bool { return strings.HasPrefix(a, "CVE-") }) ||
				!slices.Equal(h.BlobValue.CVEs, slices.DeleteFunc(slices.Clone(v.BlobValue.Aliases), func(a string) bool { return !strings.HasPrefix(a, "CVE-") })) {
				t.Errorf("aliases %q, package CVEs %q: want the record's CVE", v.BlobValue.Aliases, h.BlobValue.CVEs)
			}
		})
	}
}

// TestWriteOSVMatches: grype's Go matcher, configured as bulwark's scanner
// configures it, finds the records for packages as syft catalogs them from a
// Go binary: modules by path with a "v" version, stdlib by name with the "go"
// version of the toolchain.
func TestWriteOSVMatches(t *testing.T) {
	r, _ := writeOSV(t)
	provider := v6.NewVulnerabilityProvider(r)
	m := anchore.VulnerabilityMatcher{VulnerabilityProvider: provider, Matchers: matcher.NewDefaultMatchers(matcher.Config{})}

	for _, tc := range []struct {
		pkg, version string
		want         []string // "ID fixed-in", sorted
	}{
		// grype lists the fixes of every window of the package: one per Go
		// release branch.
		{"stdlib", "go1.26.8", []string{"GO-2026-6599 1.26.9, 1.27.2", "GO-2026-6603 1.26.9, 1.27.2"}},
		{"stdlib", "go1.26.9", nil},
		{"stdlib", "go1.27.0", []string{"GO-2026-6599 1.26.9, 1.27.2", "GO-2026-6603 1.26.9, 1.27.2"}},
		{"stdlib", "go1.27.3", nil},
		{"golang.org/x/net", "v0.59.0", []string{"GO-2026-6603 0.60.0"}},
		{"golang.org/x/net", "v0.60.0", nil},
		{"golang.org/x/text", "v0.40.0", []string{"GO-2026-6629 0.41.0"}},
		{"golang.org/x/text", "v0.41.0", nil},
		{"github.com/sigstore/cosign/v2", "v2.6.5", []string{"GO-2026-4529 "}},
		{"github.com/sigstore/cosign/v3", "v3.0.4", []string{"GO-2026-4529 3.0.5"}},
		{"github.com/sigstore/cosign/v3", "v3.0.5", nil},
		{"github.com/lib/pq", "v1.11.0", nil}, // withdrawn
		{"github.com/grafana/grafana", "v8.5.13+incompatible", []string{"GO-2024-2858 8.5.14, 9.1.8"}},
		{"github.com/grafana/grafana", "v8.5.14+incompatible", nil},
		{"github.com/grafana/grafana", "v9.1.7+incompatible", []string{"GO-2024-2858 8.5.14, 9.1.8"}},
		{"github.com/grafana/grafana", "v9.1.8+incompatible", nil},
	} {
		t.Run(tc.pkg+"@"+tc.version, func(t *testing.T) {
			p := grypepkg.Package{
				ID:       grypepkg.ID(tc.pkg + "@" + tc.version),
				Name:     tc.pkg,
				Version:  tc.version,
				Type:     syftpkg.GoModulePkg,
				Language: syftpkg.Go,
				PURL:     "pkg:golang/" + tc.pkg + "@" + strings.TrimPrefix(tc.version, "go"),
				Metadata: grypepkg.GolangBinMetadata{},
			}
			matches, _, err := m.FindMatches([]grypepkg.Package{p}, grypepkg.Context{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, mt := range matches.Sorted() {
				fix := ""
				if mt.Vulnerability.Fix.State == vulnerability.FixStateFixed {
					fix = strings.Join(mt.Vulnerability.Fix.Versions, ", ")
				}
				got = append(got, mt.Vulnerability.ID+" "+fix)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
		})
	}
}
