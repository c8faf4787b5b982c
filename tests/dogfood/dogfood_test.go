package dogfood_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-dev/bulwark/internal/image"
	"github.com/bulwark-dev/bulwark/internal/wire"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/tests/oci"
	"github.com/bulwark-dev/bulwark/tests/release"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// maxIgnoreHorizon bounds how far ahead an ignore rule of policy.yaml may
// expire: each accepted finding is looked at again at least twice a year.
const maxIgnoreHorizon = 183 * 24 * time.Hour

// The toolchains of the positive controls: the installed one, whose standard
// library has known vulnerabilities, and the release one (`make release`), whose
// has none in the pinned database. The go command fetches either from the
// module proxy if it is not the local one.
const (
	vulnerableGo = "go1.26.8"
	releaseGo    = "go1.27.3"
)

// TestDogfood: bulwark's scanner finds no vulnerability in bulwark's release
// binaries that policy.yaml does not accept, on a database of every Go
// vulnerability database record; and the same pipeline does find the known
// vulnerabilities of an old standard library and of an old module.
func TestDogfood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bulwark's release binaries with " + releaseGo + " and a database of the whole Go vulnerability database")
	}
	// The release build is the long part on a cold build cache: it runs while
	// the database is written and the controls are scanned.
	build := startRelease(t)
	e := newEnv(t)

	t.Run("controls/stdlib", func(t *testing.T) {
		bin := buildControl(t, vulnerableGo, "", `import (
	"fmt"
	"net/http"
)

func main() { fmt.Println(http.StatusText(http.StatusOK)) }`)
		r := e.scan(t, "control-stdlib", map[string]string{"stdlib-control": bin})
		// The standard library records fixed in Go 1.26.9 and 1.27.2, as the
		// pinned database holds them (GO-2026-6601 and 6602 are toolchain
		// records: cmd/go, never in a binary; there is no GO-2026-6606).
		want := []string{"GO-2026-6599", "GO-2026-6600", "GO-2026-6603", "GO-2026-6604", "GO-2026-6605", "GO-2026-6607",
			"GO-2026-6608", "GO-2026-6609", "GO-2026-6610", "GO-2026-6611", "GO-2026-6612", "GO-2026-6613"}
		found := map[string]scan.Finding{}
		for _, f := range r.Findings {
			if f.Package != "stdlib" || f.Installed != vulnerableGo || f.Type != "go-module" {
				t.Errorf("finding %+v: want only the standard library of %s", f, vulnerableGo)
			}
			found[f.ID] = f
		}
		for _, id := range want {
			f, ok := found[id]
			if !ok {
				t.Errorf("%s not found in the standard library of %s", id, vulnerableGo)
				continue
			}
			if !slices.Contains(strings.Split(f.FixedIn, ", "), "1.26.9") || f.Severity != scan.SeverityHigh {
				t.Errorf("%s: fixed in %q, severity %s; want 1.26.9 among the fixes, High (the default)", id, f.FixedIn, f.Severity)
			}
		}
		for _, f := range r.Findings {
			if f.ID == "GO-2026-6601" || f.ID == "GO-2026-6602" {
				t.Errorf("toolchain record %s matched a binary", f.ID)
			}
		}
	})

	t.Run("controls/module", func(t *testing.T) {
		// GO-2026-6629: a panic in golang.org/x/text/secure/precis, fixed in
		// v0.41.0. Built with the release toolchain; the standard library's
		// findings, if a newer database has any, are the release test's concern.
		bin := buildControl(t, releaseGo, "require golang.org/x/text v0.40.0", `import (
	"fmt"

	"golang.org/x/text/secure/precis"
)

func main() { fmt.Println(precis.UsernameCaseMapped.String("Bulwark")) }`)
		r := e.scan(t, "control-module", map[string]string{"module-control": bin})
		want := []scan.Finding{{ID: "GO-2026-6629", Severity: scan.SeverityHigh, Package: "golang.org/x/text", Type: "go-module",
			Installed: "v0.40.0", FixedIn: "0.41.0", Platform: "linux/amd64"}}
		got := slices.DeleteFunc(slices.Clone(r.Findings), func(f scan.Finding) bool { return f.Package == "stdlib" })
		if !slices.Equal(want, got) {
			t.Errorf("findings %+v\nwant %+v", got, want)
		}
	})

	t.Run("release", func(t *testing.T) {
		p, err := wire.LoadPolicy("policy.yaml")
		if err != nil {
			t.Fatalf("policy.yaml: %v", err)
		}
		vc := p.Checks.Vulnerabilities
		if vc.Threshold != "Unknown" || vc.OnlyFixed || len(vc.Namespaces) > 0 || !slices.Equal(vc.Images, []string{"**"}) {
			t.Fatalf("policy.yaml must count every finding of every image (threshold Unknown, not onlyFixed, no per-namespace thresholds, images **): %+v", vc)
		}
		now := time.Now()
		for _, r := range vc.Ignore {
			if !r.Expires.After(now) {
				t.Errorf("ignore rule %s (%s) expired %s: fix the finding or renew the rule with a reason that still holds", r.ID, r.Reason, r.Expires.UTC().Format(time.RFC3339))
			} else if r.Expires.Sub(now) > maxIgnoreHorizon {
				t.Errorf("ignore rule %s expires %s, more than %d days ahead", r.ID, r.Expires.UTC().Format(time.RFC3339), maxIgnoreHorizon/(24*time.Hour))
			}
		}

		bins := build.wait(t)
		used := map[int]bool{}
		for _, bin := range slices.Sorted(maps.Keys(bins)) {
			r := e.scan(t, "bulwark-"+bin, map[string]string{bin: bins[bin]})
			var accepted []string
			for _, v := range policy.JudgeScan(p, r.Image, "bulwark-system", now, r) {
				if v.Action != policy.ActionExempt {
					t.Errorf("%s: %s", bin, v.Detail)
					continue
				}
				accepted = append(accepted, v.Finding)
				for i, rule := range vc.Ignore {
					if strings.EqualFold(rule.ID, v.Finding) && rule.Reason == v.Exemption.Reason && rule.Expires.Time.Equal(v.Exemption.Until) {
						used[i] = true
					}
				}
			}
			t.Logf("%s: %d findings, %d accepted by an ignore rule %v", bin, len(r.Findings), len(accepted), accepted)
		}
		for i, rule := range vc.Ignore {
			if !used[i] {
				t.Errorf("ignore rule %s (%s) accepts no finding any more: remove it", rule.ID, rule.Reason)
			}
		}
	})
}

// env is a scanner on a database of the whole Go vulnerability database and a
// registry to push what it scans to.
type env struct {
	reg     *oci.Registry
	client  *registry.Client
	scanner *grype.Scanner
	base    v1.Image
}

func newEnv(t *testing.T) *env {
	t.Helper()
	files := vulndb.OSVFiles(t, vulndb.GoVulnDB(t))
	dir := t.TempDir()
	start := time.Now()
	stats := vulndb.WriteOSV(t, dir, files...)
	info, err := os.Stat(filepath.Join(dir, "vulnerability.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("database: %s@%s, %d records (%d withdrawn, left out), %d affected modules; written in %s (%d MB)",
		vulndb.GoVulnDBModule, vulndb.GoVulnDBVersion, stats.Records, stats.Withdrawn, stats.AffectedPackages,
		time.Since(start).Round(10*time.Millisecond), info.Size()>>20)

	db, err := grype.OpenDB(dir, grype.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{reg: oci.NewRegistry(t)}
	if e.scanner, err = grype.New(grype.Options{DB: db}); err != nil {
		t.Fatal(err)
	}
	e.client = e.reg.Client(t, registry.Options{})
	// The base `make image` builds where distroless cannot be pulled.
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		ca = []byte{} // the base's CA bundle is not scanned
	}
	if e.base, err = image.StaticBase(ca); err != nil {
		t.Fatal(err)
	}
	return e
}

// scan builds an image of bins (name in /usr/local/bin → file) on bulwark's
// base, as hack/image builds the release images, pushes it to repo and scans it
// through the guarded registry client.
func (e *env) scan(t *testing.T, repo string, bins map[string]string) *scan.Report {
	t.Helper()
	files := map[string]string{}
	var entrypoint []string
	for n, f := range bins {
		files["usr/local/bin/"+n] = f
		entrypoint = []string{"/usr/local/bin/" + n}
	}
	img, err := image.Build(image.Options{Base: e.base, BaseName: "ghcr.io/bulwark-dev/bulwark-base:static-nonroot", Binaries: files,
		Entrypoint: entrypoint, Title: repo, Version: "dogfood", Source: "https://github.com/bulwark-dev/bulwark"})
	if err != nil {
		t.Fatal(err)
	}
	d := e.reg.Push(t, repo, "", img)
	start := time.Now()
	r, err := e.scanner.Scan(t.Context(), scan.Request{Image: d, Remote: e.client.RemoteOptions(t.Context(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: scanned in %s, %d findings", repo, time.Since(start).Round(10*time.Millisecond), len(r.Findings))
	return r
}

// releaseBuild is `make release` building bulwark's release binaries into dir,
// in the background.
type releaseBuild struct {
	done  chan struct{}
	out   []byte
	err   error
	dir   string
	start time.Time
}

// startRelease starts `make release` into a temporary directory: the release
// binaries built exactly as they ship (tests/release runs make, one build at a
// time across test packages). The Go build cache makes a rebuild of unchanged
// code quick.
func startRelease(t *testing.T) *releaseBuild {
	t.Helper()
	r := &releaseBuild{done: make(chan struct{}), dir: t.TempDir(), start: time.Now()}
	ctx := t.Context()
	go func() {
		defer close(r.done)
		r.out, r.err = release.Make(ctx, "release", r.dir)
	}()
	t.Cleanup(func() { <-r.done }) // t.Context() ends first: make is killed
	return r
}

// wait waits for the build and returns the binaries by name; it fails unless
// webhook, scanner and bulwark are among them.
func (r *releaseBuild) wait(t *testing.T) map[string]string {
	t.Helper()
	<-r.done
	if r.err != nil {
		t.Fatalf("make release: %v\n%s", r.err, r.out)
	}
	entries, err := os.ReadDir(filepath.Join(r.dir, "release"))
	if err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, e := range entries {
		bins[e.Name()] = filepath.Join(r.dir, "release", e.Name())
	}
	for _, want := range []string{"webhook", "scanner", "bulwark"} {
		if bins[want] == "" {
			t.Fatalf("make release built %v, not %s", slices.Sorted(maps.Keys(bins)), want)
		}
	}
	t.Logf("make release: %s (started with the test)", time.Since(r.start).Round(100*time.Millisecond))
	return bins
}

// buildControl builds a program (main.go after "package main") in a module of
// its own requiring require, with the toolchain goVersion, static for
// linux/amd64 as the release is built.
func buildControl(t *testing.T, goVersion, require, main string) string {
	t.Helper()
	dir := t.TempDir()
	gomod := fmt.Sprintf("module example.test/control\n\ngo 1.26\n\n%s\n", require)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\n"+main+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+goVersion, "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build control with %s: %v\n%s", goVersion, err, b)
	}
	return bin
}
