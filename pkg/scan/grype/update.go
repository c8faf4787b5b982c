package grype

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/klauspost/compress/zstd"
	"github.com/spf13/afero"
)

// Update installs the newest database the listing offers, if it was built after
// the one in use, and reports whether it did. The archive is checked against the
// listing's sha256 checksum while it downloads; a database that fails any check
// is discarded and the one in use kept. Scans go on during an update, on the
// database in use, and move to the new one as they start matching.
func (d *DB) Update(ctx context.Context) (bool, error) {
	d.updateMu.Lock()
	defer d.updateMu.Unlock()
	if d.opts.HTTPClient == nil {
		return false, errors.New("update vulnerability DB: no HTTP client configured")
	}
	listingURL := latestURL(d.opts.ListingURL)
	latest, err := d.fetchListing(ctx, listingURL)
	if err != nil {
		return false, fmt.Errorf("update vulnerability DB from %s: %w", listingURL, err)
	}
	cur := d.cur.Load()
	if cur == nil {
		return false, errors.New("update vulnerability DB: closed")
	}
	if !latest.Built.After(cur.built) {
		return false, nil
	}
	h, err := d.fetch(ctx, listingURL, latest)
	if err != nil {
		return false, fmt.Errorf("update vulnerability DB from %s: %w", listingURL, err)
	}
	if err := d.replace(h); err != nil {
		return false, err
	}
	d.opts.Log.Info("Vulnerability DB updated", "built", h.built, "from", listingURL)
	return true, nil
}

// latestURL is grype's rule: a URL to a .json file is the listing, any other
// is the root of a v6 distribution.
func latestURL(u string) string {
	if strings.HasSuffix(u, ".json") {
		return u
	}
	return fmt.Sprintf("%s/v%d/%s", strings.TrimRight(u, "/"), v6.ModelVersion, distribution.LatestFileName)
}

// fetchListing reads and checks the listing document.
func (d *DB) fetchListing(ctx context.Context, listingURL string) (*distribution.LatestDocument, error) {
	body, err := d.get(ctx, listingURL)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxListingBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read listing: %w", err)
	}
	if len(b) > maxListingBytes {
		return nil, fmt.Errorf("listing exceeds %d bytes", maxListingBytes)
	}
	latest, err := distribution.NewLatestFromReader(bytes.NewReader(b))
	switch {
	case err != nil:
		return nil, err
	case latest == nil || latest.Path == "" || latest.Built.IsZero():
		return nil, errors.New("listing names no database")
	case latest.SchemaVersion.Model != v6.ModelVersion:
		return nil, fmt.Errorf("listing offers a v%d database, want v%d", latest.SchemaVersion.Model, v6.ModelVersion)
	}
	return latest, nil
}

// fetch downloads, checks, unpacks, indexes and opens the database latest
// names, in a new directory under WorkDir that is removed on any failure.
func (d *DB) fetch(ctx context.Context, listingURL string, latest *distribution.LatestDocument) (h *dbHandle, err error) {
	archiveURL, err := resolveArchive(listingURL, latest.Path)
	if err != nil {
		return nil, err
	}
	algorithm, want, ok := strings.Cut(latest.Checksum, ":")
	if !ok || algorithm != "sha256" {
		return nil, fmt.Errorf("listing checksum %q: want sha256:<hex>", latest.Checksum)
	}
	dir, err := os.MkdirTemp(d.opts.WorkDir, "grype-db-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	archive := filepath.Join(dir, "archive")
	if err := d.download(ctx, archiveURL, archive, want); err != nil {
		return nil, err
	}
	if err := unpack(archive, filepath.Join(dir, v6.VulnerabilityDBFileName), d.opts.MaxDBBytes); err != nil {
		return nil, fmt.Errorf("unpack %s: %w", archiveURL, err)
	}
	if err := os.Remove(archive); err != nil {
		return nil, err
	}
	// What grype does on install: build the indexes the published file drops,
	// and record the digest, so OpenDB can reopen the directory after a restart.
	if err := v6.Hydrater()(dir); err != nil {
		return nil, fmt.Errorf("index %s: %w", archiveURL, err)
	}
	if _, err := v6.WriteImportMetadata(afero.NewOsFs(), dir, archiveURL); err != nil {
		return nil, err
	}
	// The archive's checksum was checked on the way in: not hashed again.
	if h, err = openDir(dir); err != nil {
		return nil, err
	}
	h.owned = true
	return h, nil
}

// resolveArchive resolves the listing's relative archive path against the
// listing's URL, as grype does.
func resolveArchive(listingURL, archivePath string) (string, error) {
	u, err := url.Parse(listingURL)
	if err != nil {
		return "", fmt.Errorf("listing URL: %w", err)
	}
	u.Path = path.Join(path.Dir(u.Path), path.Clean("/"+archivePath))
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// download writes the body at archiveURL to file, at most MaxArchiveBytes, and
// checks its sha256 against want (hex).
func (d *DB) download(ctx context.Context, archiveURL, file, want string) error {
	body, err := d.get(ctx, archiveURL)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, d.opts.MaxArchiveBytes+1))
	switch {
	case err != nil:
		return fmt.Errorf("download %s: %w", archiveURL, err)
	case n > d.opts.MaxArchiveBytes:
		return fmt.Errorf("download %s: exceeds %d bytes", archiveURL, d.opts.MaxArchiveBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(want) {
		return fmt.Errorf("download %s: checksum sha256:%s, listing says sha256:%s", archiveURL, got, want)
	}
	return f.Close()
}

// get sends a GET with the configured client and returns the body of a 200.
func (d *DB) get(ctx context.Context, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

// unpack writes the vulnerability.db of a tar.zst or tar.gz archive to dest,
// at most limit bytes. Nothing else in the archive is written.
func unpack(archive, dest string, limit int64) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	var r io.Reader
	switch {
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderLowmem(true), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	case magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	default:
		return errors.New("not a tar.zst or tar.gz archive")
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("no %s in the archive", v6.VulnerabilityDBFileName)
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg || path.Base(path.Clean(hdr.Name)) != v6.VulnerabilityDBFileName {
			continue
		}
		out, err := os.Create(dest)
		if err != nil {
			return err
		}
		defer out.Close()
		n, err := io.Copy(out, io.LimitReader(tr, limit+1))
		switch {
		case err != nil:
			return err
		case n > limit:
			return fmt.Errorf("%s exceeds %d bytes", v6.VulnerabilityDBFileName, limit)
		}
		return out.Close()
	}
}
