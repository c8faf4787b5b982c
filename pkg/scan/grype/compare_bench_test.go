package grype_test

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// BenchmarkScanDebian scans one Debian-sized image (156 dpkg packages, 678
// files, 4 layers, 29 MiB unpacked) cold, that is pulled, unpacked and
// cataloged every time, from the in-process TLS registry, against one database
// written by tests/vulndb (1,332 records): by bulwark's scanner and by the grype
// CLI (github.com/anchore/grype/cmd/grype at the version go.mod requires, built
// by hack/bench-scan.sh). Both must report the same findings.
//
//	bulwark       Scan on a database opened once, as the webhook and the scanner
//	              worker run it
//	bulwark-open  OpenDB + New + Scan + Close every time: a new database handle
//	              per scan (syft's license scanner is still built once per
//	              process, by the first New: that time is logged, and the
//	              first scan's)
//	grype-cli     `grype registry:<image> -o json`, one process per scan, on the
//	              same database (GRYPE_DB_CACHE_DIR, no update check) and the
//	              same registry (served by this process); skipped unless
//	              BULWARK_GRYPE names the binary
//
// Each reports peak-RSS-MiB: the process's peak resident set during the scans
// (VmHWM, reset before them; see peakRSS.report for the other figures) for
// bulwark, the largest child's for the CLI.
// With BULWARK_BENCH_SCAN_DIR set, the database (DIR/db/6, grype's cache
// layout) and the image (DIR/image, an OCI layout, for `grype oci-dir:`) are
// kept there for hack/bench-scan.sh:
//
//	BULWARK_GRYPE=$(command -v grype) go test ./pkg/scan/grype -run XXX -bench ScanDebian -benchtime 10x
func BenchmarkScanDebian(b *testing.B) {
	root := os.Getenv("BULWARK_BENCH_SCAN_DIR")
	if root == "" {
		root = b.TempDir()
	} else if err := os.RemoveAll(root); err != nil {
		b.Fatal(err)
	}
	dbDir := filepath.Join(root, "db", "6") // grype's <cache-dir>/<schema>
	vulns, want := debianVulns()
	vulndb.Write(b, dbDir, vulns...)
	start := time.Now()
	e := newEnv(b, dbDir, grype.DBOptions{})
	b.Logf("OpenDB and New (New builds syft's license scanner, once per process): %s", time.Since(start).Round(time.Millisecond))
	img := debianImage(b)
	image := e.reg.Push(b, "bench/debian", "", img)
	writeLayout(b, filepath.Join(root, "image"), img)
	caFile := filepath.Join(root, "registry-ca.pem")
	if err := os.WriteFile(caFile, e.reg.CAPEM, 0o644); err != nil {
		b.Fatal(err)
	}

	start = time.Now()
	r, err := e.scanner.Scan(b.Context(), e.request(b, image))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("first scan in this process: %s", time.Since(start).Round(time.Millisecond))
	if diff := cmp.Diff(want, findingKeys(r.Findings)); diff != "" {
		b.Fatalf("bulwark's findings (-want +got):\n%s", diff)
	}

	b.Run("bulwark", func(b *testing.B) {
		peak := newPeakRSS(b)
		for b.Loop() {
			if _, err := e.scanner.Scan(b.Context(), e.request(b, image)); err != nil {
				b.Fatal(err)
			}
		}
		peak.report(b)
	})

	b.Run("bulwark-open", func(b *testing.B) {
		peak := newPeakRSS(b)
		for b.Loop() {
			db, err := grype.OpenDB(dbDir, grype.DBOptions{})
			if err != nil {
				b.Fatal(err)
			}
			s, err := grype.New(grype.Options{DB: db})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Scan(b.Context(), e.request(b, image)); err != nil {
				b.Fatal(err)
			}
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
		}
		peak.report(b)
	})

	b.Run("grype-cli", func(b *testing.B) {
		bin := os.Getenv("BULWARK_GRYPE")
		if bin == "" {
			b.Skip("BULWARK_GRYPE unset: no grype CLI to compare with (hack/bench-scan.sh builds one)")
		}
		env := append(os.Environ(), grypeEnv(filepath.Join(root, "db"))...)
		env = append(env, "GRYPE_REGISTRY_CA_CERT="+caFile)
		var maxRSS int64
		for b.Loop() {
			var out, stderr bytes.Buffer
			cmd := exec.CommandContext(b.Context(), bin, "registry:"+image.String(), "-o", "json", "-q")
			cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v\n%s", cmd, err, stderr.Bytes())
			}
			b.StopTimer()
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				maxRSS = max(maxRSS, ru.Maxrss) // KiB on Linux
			}
			got, err := grypeFindingKeys(out.Bytes())
			if err != nil {
				b.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				b.Fatalf("grype CLI's findings (-want +got):\n%s", diff)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
	})
}

// grypeEnv points the grype CLI at the database under cacheDir (cacheDir/6)
// and keeps it off the network: no database update, no application update
// check, and no age check (the fixture is stamped when written, but a
// fixture is never stale on purpose).
func grypeEnv(cacheDir string) []string {
	return []string{
		"GRYPE_DB_CACHE_DIR=" + cacheDir,
		"GRYPE_DB_AUTO_UPDATE=false",
		"GRYPE_DB_VALIDATE_AGE=false",
		"GRYPE_CHECK_FOR_APP_UPDATE=false",
	}
}

// findingKeys returns "ID package installed" of each finding, sorted.
func findingKeys(fs []scan.Finding) []string {
	keys := make([]string, 0, len(fs))
	for _, f := range fs {
		keys = append(keys, f.ID+" "+f.Package+" "+f.Installed)
	}
	slices.Sort(keys)
	return keys
}

// grypeFindingKeys returns findingKeys of the matches in the grype CLI's JSON
// report.
func grypeFindingKeys(doc []byte) ([]string, error) {
	var report struct {
		Matches []struct {
			Vulnerability struct{ ID string }
			Artifact      struct{ Name, Version string }
		}
	}
	if err := json.Unmarshal(doc, &report); err != nil {
		return nil, fmt.Errorf("grype CLI's report: %w", err)
	}
	keys := make([]string, 0, len(report.Matches))
	for _, m := range report.Matches {
		keys = append(keys, m.Vulnerability.ID+" "+m.Artifact.Name+" "+m.Artifact.Version)
	}
	slices.Sort(keys)
	return keys, nil
}

// peakRSS measures the process's peak resident set from its creation on.
type peakRSS struct {
	ok   bool
	base float64 // MiB resident at the start
}

// newPeakRSS returns the heap's free memory to the OS and resets the kernel's
// peak resident set (VmHWM) of this process to its current resident set
// (Linux ≥ 4.0), which it records as the base.
func newPeakRSS(b *testing.B) peakRSS {
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not measured: %v", err)
		return peakRSS{}
	}
	return peakRSS{ok: true, base: procStatusMiB(b, "VmRSS")}
}

// report reports VmHWM as peak-RSS-MiB, the resident set before the scans
// (the registry's blobs, the image built in memory, the open database, the
// pages of the test binary) as base-RSS-MiB, and the resident pages of files
// mapped (the test binary, mostly) now as file-RSS-MiB.
func (p peakRSS) report(b *testing.B) {
	if p.ok {
		b.ReportMetric(procStatusMiB(b, "VmHWM"), "peak-RSS-MiB")
		b.ReportMetric(p.base, "base-RSS-MiB")
		b.ReportMetric(procStatusMiB(b, "RssFile"), "file-RSS-MiB")
	}
}

// procStatusMiB returns the field of /proc/self/status (in kB there) in MiB.
func procStatusMiB(b *testing.B, field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kib / 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// debianBase are the packages of a debian:12 base image; debianExtra what a
// typical `apt-get install` of a runtime adds on top.
var (
	debianBase = strings.Fields(`adduser apt base-files base-passwd bash bsdutils coreutils dash debconf
		debian-archive-keyring debianutils diffutils dpkg e2fsprogs findutils gcc-12-base gpgv grep gzip
		hostname init-system-helpers libacl1 libapt-pkg6.0 libattr1 libaudit-common libaudit1 libblkid1
		libbz2-1.0 libc-bin libc6 libcap-ng0 libcap2 libcom-err2 libcrypt1 libdb5.3 libdebconfclient0
		libext2fs2 libffi8 libgcc-s1 libgcrypt20 libgmp10 libgnutls30 libgpg-error0 libhogweed6 libidn2-0
		liblz4-1 liblzma5 libmd0 libmount1 libnettle8 libp11-kit0 libpam-modules libpam-modules-bin
		libpam-runtime libpam0g libpcre2-8-0 libseccomp2 libselinux1 libsemanage-common libsemanage2
		libsepol2 libsmartcols1 libss2 libstdc++6 libsystemd0 libtasn1-6 libtinfo6 libudev1 libunistring2
		libuuid1 libxxhash0 libzstd1 login logsave mawk mount ncurses-base ncurses-bin passwd perl-base sed
		sysvinit-utils tar tzdata usr-is-merged util-linux util-linux-extra zlib1g`)
	debianExtra = strings.Fields(`ca-certificates curl libcurl4 openssl libssl3 libbrotli1 libnghttp2-14
		libpsl5 librtmp1 libssh2-1 libldap-2.5-0 libldap-common libsasl2-2 libsasl2-modules-db libkrb5-3
		libgssapi-krb5-2 libk5crypto3 libkrb5support0 libkeyutils1 python3.11 python3.11-minimal
		libpython3.11-minimal libpython3.11-stdlib libexpat1 libsqlite3-0 libreadline8 readline-common
		media-types netbase git git-man liberror-perl perl perl-modules-5.36 libperl5.36 libgdbm6
		libgdbm-compat4 less procps libproc2-0 libncursesw6 libgpm2 libedit2 libbsd0 libcbor0.8 libfido2-1
		libx11-6 libx11-data libxau6 libxcb1 libxdmcp6 libxext6 libxmuu1 xauth openssh-client
		libpcre2-16-0 libpcre2-32-0 libgnutls-dane0 libunbound8 libevent-2.1-7 libicu72 libxml2 libxslt1.1
		libyaml-0-2 libjansson4 libmagic1 libmagic-mgc file`)
)

// debianVersion is the installed version of the i-th package; the test's own
// Debian packages keep theirs (debianPkgs), which its vulnerabilities match.
func debianVersion(i int, pkg string) string {
	for _, p := range debianPkgs {
		if p.Name == pkg {
			return p.Version
		}
	}
	return fmt.Sprintf("%d.%d.%d-%d+deb12u%d", 1+i%7, i%13, i%5, 1+i%3, 1+i%2)
}

// debianVulns returns the database's records and the findings ("ID package
// version", sorted) they make in debianImage: per installed package, one
// record for Debian 11 (not this release) and one already fixed; one package
// in ten affected (fixed later or not at all, every severity: 4 critical); and
// 1,000 records of packages the image does not have. Plus the other tests'
// records (openssl and libc6 are affected).
func debianVulns() ([]vulndb.Vuln, []string) {
	vulns := slices.Clone(allVulns)
	want := []string{
		highDeb.ID + " openssl " + debianVersion(0, "openssl"),
		unfixedDeb.ID + " libc6 " + debianVersion(0, "libc6"),
	}
	severities := []string{"critical", "high", "medium", "low", "negligible"}
	for i, pkg := range slices.Concat(debianBase, debianExtra) {
		deb := func(id, release, constraint, fix string) vulndb.Vuln {
			return vulndb.Vuln{ID: id, Severity: severities[i%len(severities)], Ecosystem: "deb", Distro: "debian",
				Version: release, Package: pkg, Constraint: constraint, FixedIn: fix}
		}
		vulns = append(vulns,
			deb(fmt.Sprintf("CVE-2021-%05d", i), "11", "< 99", "99"),
			deb(fmt.Sprintf("CVE-2022-%05d", i), "12", "< 0.1", "0.1"))
		if i%10 == 0 {
			v := deb(fmt.Sprintf("CVE-2025-%05d", i), "12", "< 99", "99")
			v.Severity = severities[i/10%len(severities)]
			if i%20 == 0 {
				v.Constraint, v.FixedIn = "< 99", ""
			}
			if v.Severity == "critical" {
				v.CVSS = criticalApk.CVSS
			}
			vulns = append(vulns, v)
			want = append(want, v.ID+" "+pkg+" "+debianVersion(i, pkg))
		}
	}
	for i := range 1000 {
		vulns = append(vulns, vulndb.Vuln{ID: fmt.Sprintf("CVE-2024-1%04d", i), Severity: severities[i%len(severities)],
			Ecosystem: "deb", Distro: "debian", Version: "12", Package: fmt.Sprintf("absent-%d", i),
			Constraint: "< 99", FixedIn: "99"})
	}
	slices.Sort(want)
	return vulns, want
}

// debianImage returns a linux/amd64 image laid out the way a Debian image with
// a runtime and an application on top is: the base packages (layer 1), more
// packages installed over them (layer 2, with the whole dpkg status again), an
// application (layer 3) and its configuration (layer 4). Each package has its
// dpkg file list and md5sums, a DEP-5 copyright file (syft reads licenses
// there) and a library of 8–256 KiB. File contents are pseudo-random from a
// fixed seed, compressible about 2:1, so the image is the same every run.
func debianImage(b *testing.B) v1.Image {
	rng := rand.New(rand.NewPCG(1, 2))
	payload := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = 'A' + byte(rng.IntN(16))
		}
		return p
	}
	var status strings.Builder
	packages := func(names []string, offset int) map[string][]byte {
		files := map[string][]byte{}
		for j, pkg := range names {
			i := offset + j
			lib := fmt.Sprintf("usr/lib/x86_64-linux-gnu/%s.so.%d", pkg, 1+i%3)
			size := 8 << 10 << (i % 6)
			if pkg == "libc6" || pkg == "libpython3.11-stdlib" {
				size = 4 << 20
			}
			copyright := fmt.Sprintf("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"+
				"Upstream-Name: %s\n\nFiles: *\nCopyright: 2000-2024 The %s authors\nLicense: %s\n",
				pkg, pkg, []string{"GPL-2+", "LGPL-2.1+", "MIT", "BSD-3-clause", "Apache-2.0"}[i%5])
			files[lib] = payload(size)
			files["usr/share/doc/"+pkg+"/copyright"] = []byte(copyright)
			sum := md5.Sum(files[lib])
			files["var/lib/dpkg/info/"+pkg+".md5sums"] = []byte(hex.EncodeToString(sum[:]) + "  " + lib + "\n")
			files["var/lib/dpkg/info/"+pkg+".list"] = []byte("/.\n/usr\n/usr/lib\n/usr/lib/x86_64-linux-gnu\n/" + lib +
				"\n/usr/share\n/usr/share/doc\n/usr/share/doc/" + pkg + "\n/usr/share/doc/" + pkg + "/copyright\n")
			depends := ""
			if i > 0 {
				depends = "Depends: libc6 (>= 2.34)"
				if i > 2 {
					depends += ", " + slices.Concat(debianBase, debianExtra)[i-2]
				}
				depends += "\n"
			}
			fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: libs\n"+
				"Installed-Size: %d\nMaintainer: Debian <debian@example.org>\nArchitecture: amd64\nVersion: %s\n%s"+
				"Description: %s\n\n", pkg, size>>10, debianVersion(i, pkg), depends, pkg)
		}
		files["var/lib/dpkg/status"] = []byte(status.String())
		return files
	}
	base := packages(debianBase, 0)
	// No VERSION_CODENAME: grype would then look the release up by codename,
	// which tests/vulndb's records do not carry.
	base["etc/os-release"] = []byte("PRETTY_NAME=\"Debian GNU/Linux 12\"\nNAME=\"Debian GNU/Linux\"\n" +
		"VERSION_ID=\"12\"\nID=debian\n")
	runtime := packages(debianExtra, len(debianBase))
	app := map[string][]byte{"app/bin/server": payload(8 << 20)}
	for i := range 40 {
		app[fmt.Sprintf("app/static/asset-%02d.js", i)] = payload(16 << 10)
	}
	config := map[string][]byte{}
	for i := range 10 {
		config[fmt.Sprintf("app/config/%02d.yaml", i)] = fmt.Appendf(nil, "name: part-%d\nreplicas: 2\n", i)
	}
	return vulndb.Image(b, vulndb.AMD64,
		vulndb.Layer(b, base), vulndb.Layer(b, runtime), vulndb.Layer(b, app), vulndb.Layer(b, config))
}

// writeLayout writes img as the only image of an OCI layout in dir.
func writeLayout(b *testing.B, dir string, img v1.Image) {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		b.Fatal(err)
	}
}
