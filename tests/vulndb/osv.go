package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
)

// The Go vulnerability database (vuln.go.dev) is published as a Go module whose
// data/osv holds one OSV record per report (GO-YYYY-NNNN.json). The tests read
// one pinned version of it, fetched through the Go module proxy like any module.
const (
	GoVulnDBModule = "golang.org/x/vulndb"
	// GoVulnDBVersion is the pinned version (the module has no tags: every
	// version is a pseudo-version of its master branch). To bump it:
	//
	//	go list -m -json golang.org/x/vulndb@master   # prints the newest Version
	//
	// put that Version here, run `go test -run TestDogfood ./tests/dogfood/`, and
	// handle each new finding as docs/dogfood.md says (bump the dependency, or an
	// ignore rule with a reason and an expiry).
	GoVulnDBVersion = "v0.0.0-20261105234957-e22db6528018"
)

// GoVulnDB returns the data/osv directory of the pinned Go vulnerability
// database, downloading the module through the Go module proxy on first use
// (`go mod download`; the module cache keeps it, ≈70 MB).
func GoVulnDB(t T) string {
	t.Helper()
	dir, err := goVulnDB()
	if err != nil {
		t.Fatalf("%s@%s: %v", GoVulnDBModule, GoVulnDBVersion, err)
	}
	return dir
}

func goVulnDB() (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	// Outside any module, so the download touches no go.mod or go.sum.
	work, err := os.MkdirTemp("", "vulndb-download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	cmd := exec.Command(goCmd, "mod", "download", "-json", GoVulnDBModule+"@"+GoVulnDBVersion)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); jerr == nil && mod.Error != "" {
		return "", errors.New(mod.Error)
	}
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("go mod download: %w", err)
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("go mod download printed no directory: %s", out)
	}
	return filepath.Join(mod.Dir, "data", "osv"), nil
}

// OSVFiles returns the OSV records in dir (GO-*.json), sorted.
func OSVFiles(t T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "GO-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no OSV records GO-*.json in %s (%v)", dir, err)
	}
	return files
}

// DefaultGoSeverity is the severity given to a Go vulnerability database record
// that states none. vuln.go.dev scores nothing (no record of the pinned version
// has a severity), and grype reports a vulnerability without one as Unknown,
// which ranks below every threshold but Unknown itself: under a High or Medium
// threshold such findings would silently pass. The Go security team publishes
// only reports it has reviewed as vulnerabilities of the module, so they are
// taken as High. (The dogfood's threshold is Unknown: it counts every finding
// whatever its severity.)
const DefaultGoSeverity = "high"

// OSVStats counts what WriteOSV read and wrote.
type OSVStats struct {
	// Records is the number of OSV records read.
	Records int
	// Withdrawn counts the records left out because they were withdrawn.
	Withdrawn int
	// Vulnerabilities is the number of records written.
	Vulnerabilities int
	// AffectedPackages is the number of (record, module) pairs written; "stdlib"
	// and "toolchain" count as modules.
	AffectedPackages int
}

// WriteOSV writes into dir a grype v6 database holding the Go vulnerability
// database's OSV records in files (data/osv/GO-*.json), built now, installed as
// Write installs one. It fails on a record it does not understand (another
// ecosystem, range type or event), rather than leave it out.
//
// A record becomes a vulnerability named by its GO id, with its aliases (CVE,
// GHSA) and one affected package per module it names (ecosystem go-module, the
// module path, or "stdlib" or "toolchain"), in the shapes grype's Go matcher
// looks up: a module syft lists from a binary's build info (pkg:golang/…) is
// found by its path; the "stdlib" package syft makes from the Go version the
// binary was built with (go1.26.8) by the name stdlib (bulwark's matcher config
// leaves grype's CPE search off, and the name search happens either way). No
// package syft makes is named "toolchain": those records (cmd/go, cgo) are
// flaws of the build machine and never match a binary.
//
// SEMVER events become one "go" range per affected window (introduced …
// fixed, versions as vuln.go.dev writes them, without "v"), each with its fix;
// a trailing introduced is an open range without a fix, and a lone
// "introduced: 0" is no range at all, which grype matches for every version.
// ecosystem_specific.custom_ranges, which vuln.go.dev writes for
// +incompatible modules, are merged as grype-db's govulndb transformer merges
// them. Withdrawn records are left out.
//
// Two choices differ from the database grype publishes:
//   - ecosystem_specific.imports (the vulnerable packages and symbols) is not
//     read. grype would make it a go-imports qualifier that, for binaries
//     catalogued with symbol capture, matches only if a vulnerable symbol is
//     linked. Here a linked module version in range is a finding whether or not
//     its vulnerable code is reachable: reachability belongs in an ignore
//     rule's reason, not in the scanner.
//   - a record that states no CVSS vector gets DefaultGoSeverity.
func WriteOSV(t T, dir string, files ...string) OSVStats {
	t.Helper()
	var stats OSVStats
	built := time.Now().UTC().Truncate(time.Second)
	err := writeDB(dir, built, func(w v6.ReadWriter, built time.Time) error {
		prov := &v6.Provider{ID: "govulndb", Version: GoVulnDBVersion, Processor: "bulwark tests/vulndb", DateCaptured: &built}
		for _, f := range files {
			if err := addOSV(w, f, prov, &stats); err != nil {
				return fmt.Errorf("%s: %w", filepath.Base(f), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write grype DB of %d OSV records in %s: %v", len(files), dir, err)
	}
	return stats
}

// addOSV writes the record in file.
func addOSV(w v6.ReadWriter, file string, prov *v6.Provider, stats *OSVStats) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var rec osvRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return err
	}
	stats.Records++
	if rec.Withdrawn != nil {
		stats.Withdrawn++
		return nil
	}
	vuln, pkgs, err := goVulnerability(&rec, prov)
	if err != nil {
		return err
	}
	if err := w.AddVulnerabilities(vuln); err != nil {
		return err
	}
	for _, p := range pkgs {
		p.VulnerabilityID = vuln.ID
	}
	if err := w.AddAffectedPackages(pkgs...); err != nil {
		return err
	}
	stats.Vulnerabilities++
	stats.AffectedPackages += len(pkgs)
	return nil
}

// osvRecord is what the converter reads of an OSV record (schema 1.x, as
// https://go.dev/security/vuln/database#schema describes vuln.go.dev's).
type osvRecord struct {
	ID         string        `json:"id"`
	Published  time.Time     `json:"published"`
	Modified   time.Time     `json:"modified"`
	Withdrawn  *time.Time    `json:"withdrawn"`
	Aliases    []string      `json:"aliases"`
	Summary    string        `json:"summary"`
	Details    string        `json:"details"`
	Severity   []osvSeverity `json:"severity"`
	Affected   []osvAffected `json:"affected"`
	References []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"references"`
	DatabaseSpecific struct {
		URL string `json:"url"`
	} `json:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Ranges            []osvRange    `json:"ranges"`
	Severity          []osvSeverity `json:"severity"`
	EcosystemSpecific struct {
		// Imports (vulnerable packages and symbols) are not read: see WriteOSV.
		CustomRanges []osvRange `json:"custom_ranges"`
	} `json:"ecosystem_specific"`
}

type osvRange struct {
	Type   string     `json:"type"`
	Events []osvEvent `json:"events"`
}

type osvEvent struct {
	Introduced   string `json:"introduced"`
	Fixed        string `json:"fixed"`
	LastAffected string `json:"last_affected"`
	Limit        string `json:"limit"`
}

// goVulnerability converts a record that is not withdrawn.
func goVulnerability(rec *osvRecord, prov *v6.Provider) (*v6.VulnerabilityHandle, []*v6.AffectedPackageHandle, error) {
	if !strings.HasPrefix(rec.ID, "GO-") {
		return nil, nil, fmt.Errorf("id %q: not a Go vulnerability database record", rec.ID)
	}
	if len(rec.Affected) == 0 {
		return nil, nil, errors.New("no affected package")
	}
	var cves []string
	for _, a := range rec.Aliases {
		if strings.HasPrefix(a, "CVE-") {
			cves = append(cves, a)
		}
	}
	var pkgs []*v6.AffectedPackageHandle
	byName := map[string]*v6.AffectedPackageHandle{}
	severities := cvssSeverities(rec.Severity)
	for _, a := range rec.Affected {
		if a.Package.Ecosystem != "Go" || a.Package.Name == "" {
			return nil, nil, fmt.Errorf("affected package %q of ecosystem %q: want a Go module", a.Package.Name, a.Package.Ecosystem)
		}
		ranges, err := goRanges(a.Ranges, a.EcosystemSpecific.CustomRanges)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", a.Package.Name, err)
		}
		severities = append(severities, cvssSeverities(a.Severity)...)
		// A module named twice (stdlib, once per release branch) is one
		// package with the ranges of both.
		if p := byName[a.Package.Name]; p != nil {
			if len(p.BlobValue.Ranges) == 0 || len(ranges) == 0 {
				p.BlobValue.Ranges = nil // one entry says every version
			} else {
				p.BlobValue.Ranges = append(p.BlobValue.Ranges, ranges...)
			}
			continue
		}
		p := &v6.AffectedPackageHandle{
			Package:   &v6.Package{Ecosystem: "go-module", Name: a.Package.Name},
			BlobValue: &v6.PackageBlob{CVEs: cves, Ranges: ranges},
		}
		byName[a.Package.Name] = p
		pkgs = append(pkgs, p)
	}
	if len(severities) == 0 {
		severities = []v6.Severity{{Scheme: v6.SeveritySchemeCHMLN, Value: DefaultGoSeverity, Rank: 1}}
	}
	var refs []v6.Reference
	if rec.DatabaseSpecific.URL != "" {
		refs = append(refs, v6.Reference{URL: rec.DatabaseSpecific.URL, Tags: []string{"ADVISORY"}})
	}
	for _, r := range rec.References {
		refs = append(refs, v6.Reference{URL: r.URL, Tags: []string{r.Type}})
	}
	vuln := &v6.VulnerabilityHandle{
		Name:       rec.ID,
		Status:     v6.VulnerabilityActive,
		ProviderID: prov.ID,
		Provider:   prov,
		BlobValue: &v6.VulnerabilityBlob{
			ID:          rec.ID,
			Description: strings.TrimSpace(rec.Summary + "\n\n" + rec.Details),
			References:  refs,
			Aliases:     rec.Aliases,
			Severities:  severities,
		},
	}
	// vuln.go.dev leaves the dates of some records at the zero time.
	if !rec.Published.IsZero() {
		vuln.PublishedDate = &rec.Published
	}
	if !rec.Modified.IsZero() {
		vuln.ModifiedDate = &rec.Modified
	}
	return vuln, pkgs, nil
}

// cvssSeverities returns the CVSS vectors among an OSV record's severities.
func cvssSeverities(in []osvSeverity) []v6.Severity {
	var out []v6.Severity
	for _, s := range in {
		if s.Type != "CVSS_V3" && s.Type != "CVSS_V4" {
			continue
		}
		version := strings.TrimPrefix(strings.SplitN(s.Score, "/", 2)[0], "CVSS:")
		out = append(out, v6.Severity{Scheme: v6.SeveritySchemeCVSS, Value: v6.CVSSSeverity{Vector: s.Score, Version: version}, Rank: 1})
	}
	return out
}

// goRanges returns the affected ranges of one affected entry: its SEMVER ranges,
// merged with its custom_ranges where it has them. No range means every
// version.
func goRanges(standard, custom []osvRange) ([]v6.Range, error) {
	std, err := flatten(standard, "SEMVER")
	if err != nil {
		return nil, err
	}
	if len(custom) == 0 {
		return windows(std), nil
	}
	cus, err := flatten(custom, "ECOSYSTEM")
	if err != nil {
		return nil, fmt.Errorf("custom_ranges: %w", err)
	}
	// custom_ranges restate a +incompatible module's versions: grype-db's
	// govulndb transformer (mergeWithCustom) combines them so.
	var merged []osvEvent
	switch {
	case len(std) == 1 && std[0].Introduced == "0": // says nothing
		merged = cus
	case !bounded(std): // ">= X" where X is the real floor
		merged = withFloor(cus, firstIntroduced(std))
	case !bounded(cus):
		merged = withFloor(closedWindows(std), firstIntroduced(cus))
	default:
		merged = append(closedWindows(std), cus...)
	}
	if r := windows(merged); len(r) > 0 {
		return r, nil
	}
	// Never let custom_ranges widen a standard range to every version.
	return windows(std), nil
}

// flatten concatenates the events of ranges of type typ: OSV holds N windows
// in one range or in N ranges alike.
func flatten(ranges []osvRange, typ string) ([]osvEvent, error) {
	var out []osvEvent
	for _, r := range ranges {
		if r.Type != typ {
			return nil, fmt.Errorf("range type %q, want %s", r.Type, typ)
		}
		for _, e := range r.Events {
			n := 0
			for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
				if v != "" {
					n++
				}
			}
			if n != 1 || e.Limit != "" {
				return nil, fmt.Errorf("range event %+v: want one of introduced, fixed, last_affected", e)
			}
		}
		out = append(out, r.Events...)
	}
	return out, nil
}

// windows turns events into one range per window: introduced (0: from the
// first version) up to fixed (with that fix) or last_affected (inclusive, no
// fix); an introduced that nothing closes is open. A lone "introduced: 0"
// gives no range: every version.
func windows(events []osvEvent) []v6.Range {
	var out []v6.Range
	lower := ""
	emit := func(upper string, fix *v6.Fix) {
		c := upper
		if lower != "" {
			c = ">= " + lower
			if upper != "" {
				c += ", " + upper
			}
		}
		out = append(out, v6.Range{Version: v6.Version{Type: "go", Constraint: c}, Fix: fix})
		lower = ""
	}
	for _, e := range events {
		switch {
		case e.Introduced == "0":
			lower = ""
		case e.Introduced != "":
			lower = e.Introduced
		case e.Fixed != "":
			emit("< "+e.Fixed, &v6.Fix{Version: e.Fixed, State: v6.FixedStatus})
		case e.LastAffected != "":
			emit("<= "+e.LastAffected, &v6.Fix{State: v6.NotFixedStatus})
		}
	}
	if lower != "" {
		emit("", &v6.Fix{State: v6.NotFixedStatus})
	}
	return out
}

// bounded reports whether some event closes a window.
func bounded(events []osvEvent) bool {
	for _, e := range events {
		if e.Fixed != "" || e.LastAffected != "" {
			return true
		}
	}
	return false
}

// closedWindows drops a trailing introduced that nothing closes.
func closedWindows(events []osvEvent) []osvEvent {
	last := -1
	for i, e := range events {
		if e.Fixed != "" || e.LastAffected != "" {
			last = i
		}
	}
	return events[:last+1]
}

func firstIntroduced(events []osvEvent) string {
	for _, e := range events {
		if e.Introduced != "" {
			return e.Introduced
		}
	}
	return ""
}

// withFloor raises the first window's "introduced: 0" to floor.
func withFloor(events []osvEvent, floor string) []osvEvent {
	out := slices.Clone(events)
	if floor == "" || floor == "0" {
		return out
	}
	for i := range out {
		if out[i].Introduced == "" {
			continue
		}
		if out[i].Introduced == "0" {
			out[i].Introduced = floor
		}
		break
	}
	return out
}
