// Package vulndb gives tests (and the demo) real grype parts: vulnerability
// databases written with grype's own v6 writer, from a few records a test
// states or from the Go vulnerability database's real OSV records (WriteOSV),
// published the way grype's distribution serves them (latest.json and a
// tar.zst archive), and images built with go-containerregistry that syft
// catalogs as Alpine or Debian, plus the oversized layers the scanner's limits
// must refuse. Nothing here is a mock.
//
// Only tests/vulndb and pkg/scan/grype may import grype or syft: every package
// that does links more than 100 MB.
package vulndb

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/klauspost/compress/zstd"
	"github.com/spf13/afero"
	"gorm.io/gorm"
)

// T is the part of testing.TB the helpers use; the demo passes its own.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Vuln is one vulnerability of one package, as a grype v6 database records it.
type Vuln struct {
	// ID is the vulnerability's name, e.g. CVE-2024-0001.
	ID string
	// Severity is the qualitative severity ("critical", "high", "medium",
	// "low", "negligible"), "" for none.
	Severity string
	// CVSS is a CVSS v3.x vector ("CVSS:3.1/AV:N/…"), "" for none. Grype
	// computes the base score from it.
	CVSS string
	// Ecosystem is "apk", "deb" or "go-module".
	Ecosystem string
	// Distro and Version name the OS for apk and deb ("alpine", "3.20";
	// "debian", "12"); empty for go-module.
	Distro, Version string
	// Package is the affected package's name.
	Package string
	// Constraint is the affected range in the ecosystem's syntax, e.g.
	// "< 3.0.15-r0".
	Constraint string
	// FixedIn is the first fixed version, "" when there is no fix.
	FixedIn string
}

// Write writes a grype v6 database holding vulns into dir (vulnerability.db
// and import.json, as grype leaves an installed database), built now (to the
// second), and returns its build time.
func Write(t T, dir string, vulns ...Vuln) time.Time {
	t.Helper()
	built := time.Now().UTC().Truncate(time.Second)
	WriteBuilt(t, dir, built, vulns...)
	return built
}

// WriteBuilt is Write with the database's build time set to built (rounded to
// the second, as grype does).
func WriteBuilt(t T, dir string, built time.Time, vulns ...Vuln) {
	t.Helper()
	err := writeDB(dir, built.UTC().Round(time.Second), func(w v6.ReadWriter, built time.Time) error {
		for _, v := range vulns {
			if err := addVuln(w, v, built); err != nil {
				return fmt.Errorf("%s: %w", v.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write grype DB in %s: %v", dir, err)
	}
}

// writeDB writes a grype v6 database into dir with fill, built at built, and
// installs it there as grype does.
func writeDB(dir string, built time.Time, fill func(w v6.ReadWriter, built time.Time) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	w, err := v6.NewWriter(v6.Config{DBDirPath: dir})
	if err != nil {
		return err
	}
	if err := fill(w, built); err != nil {
		w.Close()
		return err
	}
	// The writer stamps the build time with the clock; tests need to choose it
	// (an update must be newer than the database it replaces).
	db, ok := w.(interface{ GetDB() *gorm.DB })
	if !ok {
		w.Close()
		return fmt.Errorf("grype's v6 writer no longer exposes its DB")
	}
	if err := db.GetDB().Model(&v6.DBMetadata{}).Where("true").Update("build_timestamp", built).Error; err != nil {
		w.Close()
		return fmt.Errorf("set build time: %w", err)
	}
	// Close drops the indexes and compacts, as grype-db does before publishing.
	if err := w.Close(); err != nil {
		return err
	}
	// Then what grype does on install: rebuild the indexes, record the digest.
	if err := v6.Hydrater()(dir); err != nil {
		return fmt.Errorf("hydrate: %w", err)
	}
	if _, err := v6.WriteImportMetadata(afero.NewOsFs(), dir, "bulwark tests/vulndb"); err != nil {
		return err
	}
	return nil
}

func addVuln(w v6.ReadWriter, v Vuln, built time.Time) error {
	provider, rangeType := "github", "go"
	var osys *v6.OperatingSystem
	switch v.Ecosystem {
	case "apk":
		provider, rangeType = "alpine", "apk"
	case "deb":
		provider, rangeType = "debian", "dpkg"
	case "go-module":
	default:
		return fmt.Errorf("ecosystem %q: want apk, deb or go-module", v.Ecosystem)
	}
	if v.Distro != "" {
		major, minor, _ := strings.Cut(v.Version, ".")
		osys = &v6.OperatingSystem{Name: v.Distro, ReleaseID: v.Distro, MajorVersion: major, MinorVersion: minor}
	}
	var severities []v6.Severity
	if v.Severity != "" {
		severities = append(severities, v6.Severity{Scheme: v6.SeveritySchemeCHMLN, Value: strings.ToLower(v.Severity), Rank: 1})
	}
	if v.CVSS != "" {
		version := strings.TrimPrefix(strings.SplitN(v.CVSS, "/", 2)[0], "CVSS:")
		severities = append(severities, v6.Severity{Scheme: v6.SeveritySchemeCVSS,
			Value: v6.CVSSSeverity{Vector: v.CVSS, Version: version}, Source: "nvd@nist.gov", Rank: 2})
	}
	vh := &v6.VulnerabilityHandle{
		Name:       v.ID,
		Status:     v6.VulnerabilityActive,
		ProviderID: provider,
		Provider:   &v6.Provider{ID: provider, Version: "1", Processor: "bulwark tests/vulndb", DateCaptured: &built},
		BlobValue:  &v6.VulnerabilityBlob{ID: v.ID, Severities: severities},
	}
	if err := w.AddVulnerabilities(vh); err != nil {
		return err
	}
	fix := &v6.Fix{State: v6.NotFixedStatus}
	if v.FixedIn != "" {
		fix = &v6.Fix{Version: v.FixedIn, State: v6.FixedStatus}
	}
	return w.AddAffectedPackages(&v6.AffectedPackageHandle{
		VulnerabilityID: vh.ID,
		OperatingSystem: osys,
		Package:         &v6.Package{Ecosystem: v.Ecosystem, Name: v.Package},
		BlobValue: &v6.PackageBlob{
			CVEs:   []string{v.ID},
			Ranges: []v6.Range{{Version: v6.Version{Type: rangeType, Constraint: v.Constraint}, Fix: fix}},
		},
	})
}

// Publish publishes the database in dbDir under root the way grype's
// distribution does: root/v6/latest.json lists root/v6/<archive>.tar.zst with
// its sha256 checksum. Serve root over HTTP and point an update at the server's
// URL. It returns the archive's path.
func Publish(t T, dbDir, root string) string {
	t.Helper()
	path, err := publish(dbDir, filepath.Join(root, "v6"))
	if err != nil {
		t.Fatalf("publish grype DB %s: %v", dbDir, err)
	}
	return path
}

func publish(dbDir, dir string) (string, error) {
	desc, err := v6.ReadDescription(filepath.Join(dbDir, v6.VulnerabilityDBFileName))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	archive := filepath.Join(dir, fmt.Sprintf("vulnerability-db_v%s_%s.tar.zst",
		desc.SchemaVersion, desc.Built.Format("2006-01-02T15-04-05Z")))
	if err := writeArchive(archive, filepath.Join(dbDir, v6.VulnerabilityDBFileName)); err != nil {
		return "", err
	}
	a, err := distribution.NewArchive(archive, desc.Built.Time, desc.SchemaVersion.Model, desc.SchemaVersion.Revision, desc.SchemaVersion.Addition)
	if err != nil {
		return "", err
	}
	f, err := os.Create(filepath.Join(dir, distribution.LatestFileName))
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := (distribution.LatestDocument{Archive: *a}).Write(f); err != nil {
		return "", err
	}
	return archive, f.Close()
}

// writeArchive writes a tar.zst holding file as vulnerability.db.
func writeArchive(path, file string) error {
	src, err := os.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	zw, err := zstd.NewWriter(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Name: v6.VulnerabilityDBFileName, Mode: 0o644, Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}
