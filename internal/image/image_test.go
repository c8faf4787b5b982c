package image

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func build(t *testing.T) (v1.Image, v1.Image) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "webhook")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := StaticBase([]byte("-----BEGIN CERTIFICATE-----\n"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(Options{Base: base, BaseName: "registry.test/bulwark:base", Binaries: map[string]string{"usr/local/bin/webhook": bin},
		Entrypoint: []string{"/usr/local/bin/webhook"}, Title: "bulwark webhook", Version: "v1", Source: "https://example.test/bulwark"})
	if err != nil {
		t.Fatal(err)
	}
	return base, img
}

func TestBuildRunsAsNonRootAndNamesItsBase(t *testing.T) {
	base, img := build(t)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (nonroot)", cf.Config.User)
	}
	if diff := cmp.Diff([]string{"/usr/local/bin/webhook"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := base.Digest()
	want := map[string]string{
		AnnotationBaseName: "registry.test/bulwark:base", AnnotationBaseDigest: bd.String(),
		AnnotationTitle: "bulwark webhook", AnnotationVersion: "v1", AnnotationSource: "https://example.test/bulwark",
	}
	if diff := cmp.Diff(want, m.Annotations); diff != "" {
		t.Errorf("manifest annotations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, cf.Config.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	// The binary is root's and not writable; /tmp is sticky; no shell anywhere.
	files := map[string]*tar.Header{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
	}
	if h := files["usr/local/bin/webhook"]; h == nil || h.Uid != 0 || h.Mode != 0o555 {
		t.Errorf("webhook binary header %+v, want root-owned 0555", h)
	}
	if h := files["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("/tmp header %+v, want 01777", h)
	}
	for _, shell := range []string{"bin/sh", "bin/bash", "usr/bin/sh"} {
		if files[shell] != nil {
			t.Errorf("image has a shell: %s", shell)
		}
	}
}

func TestBuildIsReproducible(t *testing.T) {
	_, a := build(t)
	_, b := build(t)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds of the same inputs: %s and %s", da, db)
	}
}
