// Command image builds bulwark's container image without a Docker daemon
// (`make image`): the release binary on a minimal non-root base, written as an
// OCI image layout holding two images, "base" and "webhook", and optionally
// pushed to a registry.
//
//	image --webhook bin/release/webhook --out bin/image [--base-layout DIR --base-name NAME] [--push REPO]
//
// Without --base-layout the base is built here (internal/image.StaticBase) from
// this machine's CA bundle, as distroless static:nonroot cannot be pulled
// offline; the Dockerfile uses distroless itself.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-dev/bulwark/internal/image"
)

// DefaultRepository is where release images are published.
const DefaultRepository = "ghcr.io/bulwark-dev/bulwark"

// baseTag tags the base built here, next to the image.
const baseTag = "base-static-nonroot"

func main() {
	webhook := flag.String("webhook", "bin/release/webhook", "the webhook binary (static, linux/amd64)")
	out := flag.String("out", "bin/image", "OCI image layout directory to write")
	caBundle := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle for the base built here")
	baseLayout := flag.String("base-layout", "", "OCI layout holding the base image (e.g. distroless static:nonroot); empty: build one")
	baseName := flag.String("base-name", "", "with --base-layout: the base's name, recorded in org.opencontainers.image.base.name; without: REPO:"+baseTag)
	version := flag.String("version", "dev", "image version (org.opencontainers.image.version)")
	push := flag.String("push", "", "also push to REPO (REPO:base and REPO:<version>); registry credentials from the Docker config")
	flag.Parse()
	if err := run(*webhook, *out, *caBundle, *baseLayout, *baseName, *version, *push); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(webhook, out, caBundle, baseLayout, baseName, version, push string) error {
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
		baseName = cmp.Or(push, DefaultRepository) + ":" + baseTag
		certs, err := os.ReadFile(caBundle)
		if err != nil {
			return fmt.Errorf("--ca-bundle: %w", err)
		}
		if base, err = image.StaticBase(certs); err != nil {
			return err
		}
	}
	img, err := image.Build(image.Options{
		Base: base, BaseName: baseName,
		Binaries:   map[string]string{"usr/local/bin/webhook": webhook},
		Entrypoint: []string{"/usr/local/bin/webhook"},
		Title:      "bulwark webhook", Version: version, Source: "https://github.com/bulwark-dev/bulwark",
	})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	for tag, i := range map[string]v1.Image{"base": base, "webhook": img} {
		if err := p.AppendImage(i, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
			return err
		}
	}
	d, _ := img.Digest()
	bd, _ := base.Digest()
	fmt.Printf("wrote %s: webhook %s on base %s@%s\n", out, d, baseName, bd)
	if push == "" {
		return nil
	}
	repo, err := name.NewRepository(push)
	if err != nil {
		return fmt.Errorf("--push: %w", err)
	}
	for tag, i := range map[string]v1.Image{baseTag: base, version: img} {
		if err := remote.Write(repo.Tag(tag), i, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", repo.Tag(tag), err)
		}
	}
	fmt.Printf("pushed %s:%s@%s\n", repo, version, d)
	return nil
}
