package registry

import (
	"bytes"
	"cmp"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// maxPlatformManifests bounds the manifests of an index read for their bases.
const maxPlatformManifests = 16

var _ verify.Inspector = (*Client)(nil)

// Base reads what image declares about its base image: the OCI base annotations
// of its manifest, or of each platform manifest of an index (at most 16) unless
// the index itself declares one. One manifest GET for an image; one more per
// platform manifest for an index that does not declare the base itself.
func (c *Client) Base(ctx context.Context, image name.Digest, kc authn.Keychain) verify.Base {
	fail := func(err error) verify.Base {
		o, detail := Failure(image.RegistryStr(), "the manifest of "+image.DigestStr(), err)
		return verify.Base{Outcome: o, Detail: detail}
	}
	if err := c.CheckReference(image); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	puller, err := remote.NewPuller(c.RemoteOptions(ctx, kc)...)
	if err != nil {
		return fail(err)
	}
	desc, err := puller.Get(ctx, image)
	if err != nil {
		return fail(err)
	}
	var b verify.Base
	if !desc.MediaType.IsIndex() {
		m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return fail(fmt.Errorf("parse manifest: %w", err))
		}
		addBase(&b, "", m.Annotations)
		b.Outcome = verify.Verified
		return b
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return fail(fmt.Errorf("parse index: %w", err))
	}
	if idx.Annotations[verify.AnnotationBaseName] != "" || idx.Annotations[verify.AnnotationBaseDigest] != "" {
		addBase(&b, "", idx.Annotations)
		b.Outcome = verify.Verified
		return b
	}
	n := 0
	for _, child := range idx.Manifests {
		if child.MediaType.IsIndex() {
			// Fail closed: what a nested index holds would go unjudged.
			return verify.Base{Outcome: verify.Mismatch, Detail: fmt.Sprintf("index %s nests index %s; nested indexes are not read", image.DigestStr(), child.Digest)}
		}
		if !child.MediaType.IsImage() {
			continue // attestations and other artifacts
		}
		if n++; n > maxPlatformManifests {
			return verify.Base{Outcome: verify.Mismatch, Detail: fmt.Sprintf("index %s has more than %d platform manifests", image.DigestStr(), maxPlatformManifests)}
		}
		cd, err := puller.Get(ctx, image.Context().Digest(child.Digest.String()))
		if err != nil {
			return fail(err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(cd.Manifest))
		if err != nil {
			return fail(fmt.Errorf("parse manifest %s: %w", child.Digest, err))
		}
		platform := "unknown"
		if child.Platform != nil {
			platform = child.Platform.String()
		}
		addBase(&b, platform, m.Annotations)
	}
	if n == 0 {
		b.Undeclared = append(b.Undeclared, "index without platform manifests")
	}
	b.Outcome = verify.Verified
	return b
}

// addBase records what one manifest (of platform, "" for the image itself)
// declares.
func addBase(b *verify.Base, platform string, ann map[string]string) {
	name, digest := ann[verify.AnnotationBaseName], ann[verify.AnnotationBaseDigest]
	if name == "" && digest == "" {
		b.Undeclared = append(b.Undeclared, cmp.Or(platform, "image"))
		return
	}
	b.Declared = append(b.Declared, verify.BaseRef{Platform: platform, Name: name, Digest: digest})
}
