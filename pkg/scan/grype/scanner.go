// Package grype scans images with syft and grype used as libraries: it pulls an
// image by digest with go-containerregistry through the caller's remote options
// (bulwark's guarded registry client), holds the pull to scan.Limits, catalogs
// the packages with syft on a stereoscope image and matches them against a grype
// v6 database that is opened once, shared by every scan and replaced atomically
// (DB).
//
// It must not reach a registry except through the caller's remote options, use a
// Docker daemon, download a database unless asked to (DB.Update), or decide what
// a finding means for admission.
package grype

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	async "github.com/anchore/go-sync"
	anchore "github.com/anchore/grype/grype"
	"github.com/anchore/grype/grype/match"
	"github.com/anchore/grype/grype/matcher"
	grypepkg "github.com/anchore/grype/grype/pkg"
	"github.com/anchore/grype/grype/vulnerability"
	"github.com/anchore/stereoscope/pkg/file"
	"github.com/anchore/stereoscope/pkg/image"
	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/format/syftjson"
	syftsbom "github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source/stereoscopesource"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-dev/bulwark/pkg/scan"
)

// Options configure a Scanner.
type Options struct {
	// DB is the vulnerability database to match against; required. The Scanner
	// does not close it.
	DB *DB
	// Metrics, if set, receives bulwark_scans_total{result} (result "ok",
	// "limits" or "error") and bulwark_scan_duration_seconds.
	Metrics prometheus.Registerer
}

// Scanner implements scan.Scanner. Layers are unpacked under os.TempDir() (up to
// Limits.MaxUncompressedBytes per platform image) and removed when the scan
// ends. A Scanner is safe for concurrent use.
type Scanner struct {
	db *DB
	// syftValues carries the license scanner (see syftValues).
	syftValues context.Context
	scans      *prometheus.CounterVec
	duration   prometheus.Histogram
}

var _ scan.Scanner = (*Scanner)(nil)

// New returns a Scanner matching against o.DB.
func New(o Options) (*Scanner, error) {
	if o.DB == nil {
		return nil, errors.New("grype scanner: no vulnerability DB")
	}
	values, err := syftValues()
	if err != nil {
		return nil, fmt.Errorf("grype scanner: %w", err)
	}
	s := &Scanner{db: o.DB, syftValues: values}
	if o.Metrics != nil {
		s.scans, err = register(o.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_scans_total",
			Help: "Image scans by result: ok, limits (the image exceeds the scan limits) or error.",
		}, []string{"result"}))
		if err != nil {
			return nil, err
		}
		s.duration, err = register(o.Metrics, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bulwark_scan_duration_seconds",
			Help:    "Wall time of image scans, whatever their result.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 12), // 0.25 s … 8.5 min
		}))
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// grypeVersion is the grype module go.mod requires (a test keeps them equal).
// Version uses it where the binary carries no module list: test binaries.
const grypeVersion = "v0.121.2"

// syftValues carries the license scanner syft would otherwise build for every
// SBOM: compiling licensecheck's patterns is ~97% of a small image's scan. It is
// built once per process and shared: it is safe for concurrent use (syft's
// catalogers share it within a scan).
var syftValues = sync.OnceValues(func() (context.Context, error) {
	return syft.SetContextLicenseScanner(context.Background(), cataloging.DefaultLicenseConfig())
})

// Version names the scanner, e.g. "grype v0.121.2": the grype module the binary
// was built with.
func Version() string { return version() }

var version = sync.OnceValue(func() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "github.com/anchore/grype" {
				if m.Replace != nil {
					m = m.Replace
				}
				return "grype " + m.Version
			}
		}
	}
	return "grype " + grypeVersion
})

// Scan implements scan.Scanner. An image over the request's limits fails with an
// error wrapping a *scan.LimitError (errors.Is scan.ErrLimits).
func (s *Scanner) Scan(ctx context.Context, req scan.Request) (report *scan.Report, err error) {
	start := time.Now()
	defer func() { s.observe(start, err) }()
	ref := req.Image.Context().Name() + "@" + req.Image.DigestStr()
	limits := req.Limits.WithDefaults()
	if err := limits.Validate(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", ref, err)
	}
	if len(req.Remote) == 0 {
		// Without options ggcr would use its default transport, outside the
		// egress guard: refuse rather than reach the registry unguarded.
		return nil, fmt.Errorf("scan %s: no remote options (the guarded registry client's)", ref)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, limits.MaxDuration,
		&scan.LimitError{Limit: scan.LimitDuration, Max: int64(limits.MaxDuration)})
	defer cancel()

	report, err = s.scan(ctx, req, limits)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, scan.ErrLimits) {
			err = cause // the time ran out; whatever failed then failed for it
		}
		return nil, fmt.Errorf("scan %s: %w", ref, err)
	}
	report.Image = ref
	return report, nil
}

func (s *Scanner) observe(start time.Time, err error) {
	if s.scans == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, scan.ErrLimits):
		result = "limits"
	case err != nil:
		result = "error"
	}
	s.scans.WithLabelValues(result).Inc()
	s.duration.Observe(time.Since(start).Seconds())
}

// target is one image manifest to scan.
type target struct {
	img      v1.Image
	platform *v1.Platform // from the index; nil for a single image (its config says)
}

// catalog is what syft found in one target, as grype reads it.
type catalog struct {
	platform string
	pkgs     []grypepkg.Package
	context  grypepkg.Context
}

func (s *Scanner) scan(ctx context.Context, req scan.Request, limits scan.Limits) (*scan.Report, error) {
	// Every registry read, layers included, is bounded by the scan's context.
	opts := append(slices.Clip(req.Remote), remote.WithContext(ctx))
	desc, err := remote.Get(req.Image, opts...)
	if err != nil {
		return nil, err
	}
	targets, err := selectTargets(desc, req.Platforms)
	if err != nil {
		return nil, err
	}
	catalogs := make([]catalog, 0, len(targets))
	for _, t := range targets {
		c, err := s.catalog(ctx, req.Image, t, limits)
		if err != nil {
			return nil, err
		}
		catalogs = append(catalogs, c)
	}

	// The database is held from here to the end of matching: a swap meanwhile
	// closes the old one only after this release.
	db, err := s.db.acquire()
	if err != nil {
		return nil, err
	}
	defer db.release()
	report := &scan.Report{Scanner: Version(), DBBuilt: db.built}
	for _, c := range catalogs {
		findings, err := matchPackages(ctx, db.provider, c)
		if err != nil {
			return nil, err
		}
		report.Platforms = append(report.Platforms, c.platform)
		report.Findings = append(report.Findings, findings...)
	}
	scan.SortFindings(report.Findings)
	report.ScannedAt = time.Now()
	return report, nil
}

// selectTargets returns the image, or the manifests of the index for the
// wanted platforms that are present (scan.DefaultPlatforms if none are named).
func selectTargets(desc *remote.Descriptor, wanted []v1.Platform) ([]target, error) {
	switch {
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		return []target{{img: img}}, nil
	case desc.MediaType.IsIndex():
	default:
		return nil, fmt.Errorf("media type %q is neither an image nor an index", desc.MediaType)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(wanted) == 0 {
		wanted = scan.DefaultPlatforms
	}
	var targets []target
	var chosen []v1.Hash
	for _, want := range wanted {
		for _, m := range manifest.Manifests {
			if !m.MediaType.IsImage() || m.Platform == nil || !m.Platform.Satisfies(want) || slices.Contains(chosen, m.Digest) {
				continue
			}
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, err
			}
			chosen = append(chosen, m.Digest)
			targets = append(targets, target{img: img, platform: m.Platform})
			break
		}
	}
	if len(targets) == 0 {
		names := make([]string, len(wanted))
		for i, p := range wanted {
			names[i] = p.String()
		}
		return nil, fmt.Errorf("index has none of the platforms %s", strings.Join(names, ", "))
	}
	return targets, nil
}

// catalog checks t's manifest against the limits, then unpacks it within them
// and catalogs it with syft.
func (s *Scanner) catalog(ctx context.Context, ref name.Digest, t target, limits scan.Limits) (catalog, error) {
	manifest, err := t.img.Manifest()
	if err != nil {
		return catalog{}, err
	}
	if err := checkManifest(manifest, limits); err != nil {
		return catalog{}, err
	}
	cfg, err := t.img.ConfigFile()
	if err != nil {
		return catalog{}, err
	}
	platform := t.platform
	if platform == nil {
		platform = cfg.Platform()
	}
	if platform == nil || platform.OS == "" || platform.Architecture == "" {
		return catalog{}, errors.New("image config names no platform")
	}
	digest, err := t.img.Digest()
	if err != nil {
		return catalog{}, err
	}
	raw, err := t.img.RawManifest()
	if err != nil {
		return catalog{}, err
	}

	layers, err := os.MkdirTemp("", "bulwark-scan-")
	if err != nil {
		return catalog{}, err
	}
	defer os.RemoveAll(layers)
	tmp := file.NewTempDirGenerator("bulwark-scan")
	defer tmp.Cleanup()
	budget := newBudget(limits)
	img := image.New(&meteredImage{Image: t.img, budget: budget}, tmp, layers,
		image.WithRepoDigests(ref.Context().Name()+"@"+digest.String()),
		image.WithManifest(raw),
		image.WithArchitecture(platform.Architecture, platform.Variant),
		image.WithOS(platform.OS))
	// Layers come over the network: one download at a time, as stereoscope's
	// own registry provider does; indexing stays parallel.
	readCtx := async.SetContextExecutor(ctx, image.LayerFetchExecutor, async.NewExecutor(1))
	if err := img.Read(readCtx); err != nil {
		img.Cleanup()
		if lerr := budget.err(); lerr != nil {
			return catalog{}, lerr
		}
		return catalog{}, fmt.Errorf("read %s: %w", platform, err)
	}
	src := stereoscopesource.New(img, stereoscopesource.ImageConfig{
		Reference: ref.String(),
		Platform:  &image.Platform{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant},
	})
	// syft's task runner (go-sync v0.1.2 Collect) must not see its context
	// cancelled: it returns early while its tasks still read the context the next
	// task group's Collect rewrites (a data race the race detector reports). So
	// cataloging runs on a context that is never cancelled, in a goroutine that
	// removes the unpacked image when it ends, and the scan stops waiting for it
	// when ctx ends (wall-time limit, lost claim, shutdown): the scan fails on
	// time, and a cataloging that outlives it finishes on its own (it reads an
	// image already unpacked within the limits) with its result dropped.
	type result struct {
		sbom *syftsbom.SBOM
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer img.Cleanup()
		sb, err := syft.CreateSBOM(withValues{Context: context.WithoutCancel(ctx), values: s.syftValues}, src, syft.DefaultCreateSBOMConfig().WithTool("bulwark", "").WithoutFiles())
		done <- result{sb, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		res.err = context.Cause(ctx)
	}
	if res.err != nil {
		return catalog{}, fmt.Errorf("catalog %s: %w", platform, res.err)
	}
	sbom := res.sbom
	// grype takes an SBOM as a document, not in memory: through syft-json it
	// reads it the way `grype sbom:` does (distro, file-overlap removal).
	var doc bytes.Buffer
	if err := syftjson.NewFormatEncoder().Encode(&doc, *sbom); err != nil {
		return catalog{}, fmt.Errorf("encode SBOM of %s: %w", platform, err)
	}
	pkgs, pkgContext, _, err := grypepkg.ProvideFromReader(bytes.NewReader(doc.Bytes()), grypepkg.ProviderConfig{})
	if err != nil {
		return catalog{}, fmt.Errorf("read SBOM of %s: %w", platform, err)
	}
	return catalog{platform: platform.String(), pkgs: pkgs, context: pkgContext}, nil
}

// withValues is ctx with the values of another context for the keys ctx lacks.
type withValues struct {
	context.Context
	values context.Context
}

func (c withValues) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

// matchPackages matches c's packages with grype's default matchers.
func matchPackages(ctx context.Context, provider vulnerability.Provider, c catalog) ([]scan.Finding, error) {
	m := anchore.VulnerabilityMatcher{
		VulnerabilityProvider: provider,
		Matchers:              matcher.NewDefaultMatchers(matcher.Config{}),
	}
	matches, _, err := m.FindMatchesContext(ctx, c.pkgs, c.context)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", c.platform, err)
	}
	var findings []scan.Finding
	for _, mt := range matches.Sorted() {
		findings = append(findings, toFinding(provider, mt, c.platform))
	}
	return findings, nil
}

// toFinding describes a match. Severity and CVSS come from the matched record,
// or, where it has none (distribution advisories often do not), from the first
// related record that has them (NVD's, usually), as grype's own report does.
func toFinding(provider vulnerability.Provider, m match.Match, platform string) scan.Finding {
	f := scan.Finding{
		ID:        m.Vulnerability.ID,
		Severity:  scan.SeverityUnknown,
		Package:   m.Package.Name,
		Type:      string(m.Package.Type),
		Installed: m.Package.Version,
		Platform:  platform,
	}
	if m.Vulnerability.Fix.State == vulnerability.FixStateFixed {
		f.FixedIn = strings.Join(m.Vulnerability.Fix.Versions, ", ")
	}
	describe := func(md *vulnerability.Metadata) {
		if md == nil {
			return
		}
		if sev, err := scan.ParseSeverity(md.Severity); err == nil && f.Severity == scan.SeverityUnknown {
			f.Severity = sev
		}
		for _, c := range md.Cvss {
			if f.CVSS == 0 && c.Metrics.BaseScore > 0 {
				f.CVSS = c.Metrics.BaseScore
			}
		}
	}
	describe(m.Vulnerability.Metadata)
	for _, ref := range m.Vulnerability.RelatedVulnerabilities {
		if f.Severity != scan.SeverityUnknown && f.CVSS != 0 {
			break
		}
		md, err := provider.VulnerabilityMetadata(ref) //nolint:staticcheck // the only look-up of a related record's metadata
		if err == nil {
			describe(md)
		}
	}
	return f
}
