// Command image builds bulwark's container images without a Docker daemon
// (`make image`): each release binary on a minimal non-root base, written as an
// OCI image layout holding "base", "webhook" and "scanner", and optionally pushed
// to a registry as PREFIX/bulwark-base, PREFIX/bulwark-webhook and
// PREFIX/bulwark-scanner.
//
//	image --webhook bin/release/webhook --scanner bin/release/scanner --out bin/image [--base-layout DIR --base-name NAME] [--push PREFIX]
//
// Without --base-layout the base is built here (internal/image.StaticBase) from
// this machine's CA bundle, as distroless static:nonroot cannot be pulled
// offline; the Dockerfile uses distroless itself.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-dev/bulwark/internal/image"
)

// DefaultPrefix is where release images are published.
const DefaultPrefix = "ghcr.io/bulwark-dev"

// baseTag tags the base built here, in PREFIX/bulwark-base.
const baseTag = "static-nonroot"

func main() {
	webhook := flag.String("webhook", "bin/release/webhook", "the webhook binary (static, linux/amd64)")
	scanner := flag.String("scanner", "bin/release/scanner", "the scanner binary (static, linux/amd64)")
	out := flag.String("out", "bin/image", "OCI image layout directory to write")
	caBundle := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle for the base built here")
	baseLayout := flag.String("base-layout", "", "OCI layout holding the base image (e.g. distroless static:nonroot); empty: build one")
	baseName := flag.String("base-name", "", "with --base-layout: the base's name, recorded in org.opencontainers.image.base.name; without: PREFIX/bulwark-base:"+baseTag)
	version := flag.String("version", "dev", "image version (org.opencontainers.image.version)")
	push := flag.String("push", "", "also push to PREFIX/bulwark-{base,webhook,scanner}; registry credentials from the Docker config")
	flag.Parse()
	binaries := map[string]string{"webhook": *webhook, "scanner": *scanner}
	if err := run(binaries, *out, *caBundle, *baseLayout, *baseName, *version, *push); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// run builds one image per binary (component name → path) on the base.
func run(binaries map[string]string, out, caBundle, baseLayout, baseName, version, push string) error {
	var base v1.Image
	if baseLayout != "" {
		p, err := layout.FromPath(baseLayout)
		if err != nil {
			return fmt.Errorf("--base-layout: %w", err)
		}
		idx, err := p.ImageIndex()
		if err != nil {
			return err
		}
		m, err := idx.IndexManifest()
		if err != nil || len(m.Manifests) == 0 {
			return fmt.Errorf("--base-layout %s holds no image", baseLayout)
		}
		if base, err = idx.Image(m.Manifests[0].Digest); err != nil {
			return err
		}
		if baseName == "" {
			return fmt.Errorf("--base-layout needs --base-name")
		}
	} else {
		baseName = cmp.Or(push, DefaultPrefix) + "/bulwark-base:" + baseTag
		certs, err := os.ReadFile(caBundle)
		if err != nil {
			return fmt.Errorf("--ca-bundle: %w", err)
		}
		if base, err = image.StaticBase(certs); err != nil {
			return err
		}
	}
	images := map[string]v1.Image{"base": base}
	for component, bin := range binaries {
		img, err := image.Build(image.Options{
			Base: base, BaseName: baseName,
			Binaries:   map[string]string{"usr/local/bin/" + component: bin},
			Entrypoint: []string{"/usr/local/bin/" + component},
			Title:      "bulwark " + component, Version: version, Source: "https://github.com/bulwark-dev/bulwark",
		})
		if err != nil {
			return fmt.Errorf("%s image: %w", component, err)
		}
		images[component] = img
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	for _, tag := range slices.Sorted(maps.Keys(images)) {
		if err := p.AppendImage(images[tag], layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
			return err
		}
		d, _ := images[tag].Digest()
		fmt.Printf("wrote %s: %s %s\n", out, tag, d)
	}
	if push == "" {
		return nil
	}
	for _, component := range slices.Sorted(maps.Keys(images)) {
		tag := version
		if component == "base" {
			tag = baseTag
		}
		ref, err := name.NewTag(push + "/bulwark-" + component + ":" + tag)
		if err != nil {
			return fmt.Errorf("--push: %w", err)
		}
		if err := remote.Write(ref, images[component], remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		d, _ := images[component].Digest()
		fmt.Printf("pushed %s@%s\n", ref, d)
	}
	return nil
}
