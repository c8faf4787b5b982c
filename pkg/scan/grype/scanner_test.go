package grype_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// TestScan scans Alpine and Debian images and indexes from an in-process TLS
// registry through the guarded registry client, with grype's matchers on a
// database written by grype's own writer, and checks every finding reported.
func TestScan(t *testing.T) {
	dbDir := t.TempDir()
	built := vulndb.Write(t, dbDir, allVulns...)
	e := newEnv(t, dbDir, grype.DBOptions{})

	alpineARM := vulndb.Alpine(t, vulndb.ARM64, "3.20.3", vulndb.Package{Name: "libcrypto3", Version: "3.3.0-r2"})
	s390x := vulndb.Alpine(t, v1.Platform{OS: "linux", Architecture: "s390x"}, "3.20.3", alpinePkgs...)
	index := func(imgs ...v1.Image) name.Digest {
		idx := vulndb.Index(t, imgs...)
		h, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		d := e.reg.Repo(t, "app").Digest(h.String())
		if err := remote.WriteIndex(d, idx, e.reg.RemoteOptions()...); err != nil {
			t.Fatal(err)
		}
		return d
	}
	critical := func(installed, platform string) scan.Finding {
		return scan.Finding{ID: "CVE-2024-0001", Severity: scan.SeverityCritical, CVSS: 9.8, Package: "libcrypto3",
			Type: "apk", Installed: installed, FixedIn: "3.3.2-r0", Platform: platform}
	}

	tests := []struct {
		name          string
		image         name.Digest
		platforms     []v1.Platform
		wantPlatforms []string
		want          []scan.Finding
	}{{
		// libcrypto3 is below the fix; libssl3 is at it; musl has no record.
		name:          "alpine",
		image:         e.reg.Push(t, "app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...)),
		wantPlatforms: []string{"linux/amd64"},
		want:          []scan.Finding{critical("3.3.1-r0", "linux/amd64")},
	}, {
		name:          "alpine, nothing vulnerable",
		image:         e.reg.Push(t, "app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "libcrypto3", Version: "3.3.2-r0"})),
		wantPlatforms: []string{"linux/amd64"},
	}, {
		name:          "debian",
		image:         e.reg.Push(t, "app", "", vulndb.Debian(t, vulndb.AMD64, "12", debianPkgs...)),
		wantPlatforms: []string{"linux/amd64"},
		want: []scan.Finding{
			{ID: "CVE-2024-0003", Severity: scan.SeverityHigh, CVSS: 7.5, Package: "openssl", Type: "deb",
				Installed: "3.0.11-1~deb12u2", FixedIn: "3.0.13-1~deb12u1", Platform: "linux/amd64"},
			{ID: "CVE-2024-0004", Severity: scan.SeverityMedium, Package: "libc6", Type: "deb",
				Installed: "2.36-9+deb12u7", Platform: "linux/amd64"},
		},
	}, {
		// linux/amd64 and linux/arm64 by default; s390x is in the index but not scanned.
		name:          "index, default platforms",
		image:         index(vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...), alpineARM, s390x),
		wantPlatforms: []string{"linux/amd64", "linux/arm64/v8"},
		want:          []scan.Finding{critical("3.3.0-r2", "linux/arm64/v8"), critical("3.3.1-r0", "linux/amd64")},
	}, {
		name:          "index, requested platform",
		image:         index(vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...), alpineARM, s390x),
		platforms:     []v1.Platform{{OS: "linux", Architecture: "s390x"}, {OS: "linux", Architecture: "riscv64"}},
		wantPlatforms: []string{"linux/s390x"},
		want:          []scan.Finding{critical("3.3.1-r0", "linux/s390x")},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := e.request(t, tc.image)
			req.Platforms = tc.platforms
			before := time.Now()
			got, err := e.scanner.Scan(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.Findings, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPlatforms, got.Platforms); diff != "" {
				t.Errorf("platforms (-want +got):\n%s", diff)
			}
			if want := tc.image.Context().Name() + "@" + tc.image.DigestStr(); got.Image != want {
				t.Errorf("Image = %q, want %q", got.Image, want)
			}
			if !got.DBBuilt.Equal(built) {
				t.Errorf("DBBuilt = %s, want %s", got.DBBuilt, built)
			}
			if !strings.HasPrefix(got.Scanner, "grype v0.") {
				t.Errorf("Scanner = %q, want grype's version", got.Scanner)
			}
			if got.ScannedAt.Before(before) {
				t.Errorf("ScannedAt = %s, before the scan started (%s)", got.ScannedAt, before)
			}
		})
	}
	if got := e.metric(t, "bulwark_scan_db_built_timestamp_seconds"); got != float64(built.Unix()) {
		t.Errorf("bulwark_scan_db_built_timestamp_seconds = %v, want %d", got, built.Unix())
	}
}

// TestScanLimits scans images over each limit: each fails with a
// *scan.LimitError naming it, having read no more than the limit allows.
func TestScanLimits(t *testing.T) {
	dbDir := t.TempDir()
	vulndb.Write(t, dbDir, allVulns...)
	e := newEnv(t, dbDir, grype.DBOptions{})

	const bombSize = 256 << 20
	bomb := vulndb.GzipBomb(t, bombSize)
	bombCompressed, err := bomb.Size()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		image  name.Digest
		limits scan.Limits
		want   string
		// blobs is whether any blob may be read before the limit is found.
		blobs bool
		// maxBlobBytes bounds the blob bytes read, when not 0.
		maxBlobBytes int64
	}{{
		// 256 MiB of zeros in 1/1000 of that: reading stops at 4 MiB, having read
		// a few KiB of the compressed blob, not all of it.
		name:         "gzip bomb",
		image:        e.reg.Push(t, "bomb", "", vulndb.Image(t, vulndb.AMD64, bomb)),
		limits:       scan.Limits{MaxUncompressedBytes: 4 << 20},
		want:         scan.LimitUncompressedBytes,
		blobs:        true,
		maxBlobBytes: bombCompressed / 4,
	}, {
		name:   "too many files",
		image:  e.reg.Push(t, "files", "", vulndb.Image(t, vulndb.AMD64, vulndb.ManyFiles(t, 300))),
		limits: scan.Limits{MaxFiles: 100},
		want:   scan.LimitFiles,
		blobs:  true,
	}, {
		name:   "too many layers",
		image:  e.reg.Push(t, "layers", "", vulndb.ManyLayers(t, 10)),
		limits: scan.Limits{MaxLayers: 5},
		want:   scan.LimitLayers,
	}, {
		name:   "compressed size",
		image:  e.reg.Push(t, "size", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...)),
		limits: scan.Limits{MaxCompressedBytes: 100},
		want:   scan.LimitCompressedBytes,
	}, {
		name:   "duration",
		image:  e.reg.Push(t, "slow", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...)),
		limits: scan.Limits{MaxDuration: time.Nanosecond},
		want:   scan.LimitDuration,
	}}
	var ran int
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran++
			repo := tc.image.Context().RepositoryStr()
			blobsBefore := e.reg.Total("/v2/" + repo + "/blobs/")
			req, reads := e.withBlobReads(e.request(t, tc.image))
			req.Limits = tc.limits
			_, err := e.scanner.Scan(t.Context(), req)
			if !errors.Is(err, scan.ErrLimits) {
				t.Fatalf("Scan: %v, want an error wrapping scan.ErrLimits", err)
			}
			var limit *scan.LimitError
			if !errors.As(err, &limit) || limit.Limit != tc.want {
				t.Fatalf("Scan: %v, want the %s limit", err, tc.want)
			}
			if blobs := e.reg.Total("/v2/" + repo + "/blobs/"); !tc.blobs && blobs != blobsBefore {
				t.Errorf("%d blob requests before the %s limit was found, want none", blobs-blobsBefore, tc.want)
			}
			if read := reads.n.Load(); tc.maxBlobBytes != 0 && read > tc.maxBlobBytes {
				t.Errorf("read %d compressed bytes of %d, want at most %d", read, bombCompressed, tc.maxBlobBytes)
			}
			t.Logf("%v (%d blob bytes read)", err, reads.n.Load())
		})
	}
	if got := e.metric(t, "bulwark_scans_total", "result=limits"); got != float64(ran) {
		t.Errorf("bulwark_scans_total{result=limits} = %v, want %d", got, ran)
	}
}
