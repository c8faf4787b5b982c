package vulndb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Platforms the image builders are used with.
var (
	AMD64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	ARM64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// Package is an installed OS package.
type Package struct{ Name, Version string }

// Alpine returns an image for platform that syft catalogs as Alpine release
// (e.g. "3.20.3") with pkgs installed (lib/apk/db/installed).
func Alpine(t T, platform v1.Platform, release string, pkgs ...Package) v1.Image {
	t.Helper()
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[platform.Architecture]
	var db strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&db, "P:%s\nV:%s\nA:%s\nT:%s\nL:MIT\no:%s\n\n", p.Name, p.Version, arch, p.Name, p.Name)
	}
	osRelease := fmt.Sprintf("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=%s\nPRETTY_NAME=\"Alpine Linux v%s\"\n", release, release)
	return Image(t, platform, Layer(t, map[string][]byte{
		"etc/os-release":       []byte(osRelease),
		"lib/apk/db/installed": []byte(db.String()),
	}))
}

// Debian returns an image for platform that syft catalogs as Debian release
// (e.g. "12") with pkgs installed (var/lib/dpkg/status).
func Debian(t T, platform v1.Platform, release string, pkgs ...Package) v1.Image {
	t.Helper()
	var status strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: libs\n"+
			"Installed-Size: 100\nMaintainer: Debian <debian@example.org>\nArchitecture: %s\nVersion: %s\n"+
			"Description: %s\n\n", p.Name, platform.Architecture, p.Version, p.Name)
	}
	osRelease := fmt.Sprintf("PRETTY_NAME=\"Debian GNU/Linux %s\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"%s\"\nID=debian\n", release, release)
	return Image(t, platform, Layer(t, map[string][]byte{
		"etc/os-release":      []byte(osRelease),
		"var/lib/dpkg/status": []byte(status.String()),
	}))
}

// Layer returns a gzip layer holding files (path → content).
func Layer(t T, files map[string][]byte) v1.Layer {
	t.Helper()
	l, err := crane.Layer(files)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image returns an image for platform (recorded in its config, where
// stereoscope checks it) made of layers.
func Image(t T, platform v1.Platform, layers ...v1.Layer) v1.Image {
	t.Helper()
	cfg, err := empty.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = platform.OS, platform.Architecture, platform.Variant
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		t.Fatal(err)
	}
	return img
}

// Index returns an OCI index of imgs, each listed with the platform its config
// records.
func Index(t T, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: cfg.Platform()}})
	}
	return idx
}

// ManyFiles returns a layer of n one-byte files.
func ManyFiles(t T, n int) v1.Layer {
	t.Helper()
	files := make(map[string][]byte, n)
	for i := range n {
		files[fmt.Sprintf("files/%06d", i)] = []byte{byte(i)}
	}
	return Layer(t, files)
}

// ManyLayers returns a linux/amd64 image of n one-file layers.
func ManyLayers(t T, n int) v1.Image {
	t.Helper()
	layers := make([]v1.Layer, n)
	for i := range layers {
		layers[i] = Layer(t, map[string][]byte{fmt.Sprintf("layer/%d", i): []byte(fmt.Sprint(i))})
	}
	return Image(t, AMD64, layers...)
}

// bombChunk is the stretch of zeros each gzip member of a bomb expands to.
const bombChunk = 1 << 20

// GzipBomb returns a gzip layer of about size/1000 bytes that expands to a tar
// of one file of size zero bytes: a chain of gzip members (each decompresses on
// its own; readers go on to the next), so it is built without compressing size
// bytes. Its DiffID is the true digest of the expanded tar.
func GzipBomb(t T, size int64) v1.Layer {
	t.Helper()
	l, err := gzipBomb(size)
	if err != nil {
		t.Fatalf("gzip bomb: %v", err)
	}
	return l
}

func gzipBomb(size int64) (*bombLayer, error) {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Name: "bomb", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	// The tar ends with the file's padding to 512 bytes and two zero blocks.
	trailer := make([]byte, (512-size%512)%512+1024)

	var compressed bytes.Buffer
	diffID := sha256.New()
	member := func(b []byte) error {
		diffID.Write(b)
		zw, err := gzip.NewWriterLevel(&compressed, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(b); err != nil {
			return err
		}
		return zw.Close()
	}
	if err := member(hdr.Bytes()); err != nil {
		return nil, err
	}
	zeros := make([]byte, bombChunk)
	// Every full chunk compresses to the same member: compress it once.
	var chunk []byte
	for left := size; left > 0; left -= bombChunk {
		if left < bombChunk {
			if err := member(zeros[:left]); err != nil {
				return nil, err
			}
			break
		}
		if chunk == nil {
			start := compressed.Len()
			if err := member(zeros); err != nil {
				return nil, err
			}
			chunk = bytes.Clone(compressed.Bytes()[start:])
			continue
		}
		diffID.Write(zeros)
		compressed.Write(chunk)
	}
	if err := member(trailer); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(compressed.Bytes())
	return &bombLayer{
		compressed: compressed.Bytes(),
		digest:     v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(digest[:])},
		diffID:     v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diffID.Sum(nil))},
	}, nil
}

// bombLayer is a v1.Layer whose digests are known without expanding it.
type bombLayer struct {
	compressed     []byte
	digest, diffID v1.Hash
}

var _ v1.Layer = (*bombLayer)(nil)

func (l *bombLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *bombLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *bombLayer) Size() (int64, error)     { return int64(len(l.compressed)), nil }
func (l *bombLayer) MediaType() (types.MediaType, error) {
	return types.DockerLayer, nil
}

func (l *bombLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}

func (l *bombLayer) Uncompressed() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(bytes.NewReader(l.compressed))
	if err != nil {
		return nil, err
	}
	return zr, nil
}
