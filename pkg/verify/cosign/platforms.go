package cosign

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// verifyPlatforms verifies, as the call's request, every platform manifest of
// index, whose own verification gave indexResult (Verified). One manifest GET
// tells whether index is an index at all; if not, indexResult stands.
// buildxReferenceType marks the attestation manifests docker buildx adds to an
// index.
const buildxReferenceType = "vnd.docker.reference.type"

func (c *call) verifyPlatforms(ctx context.Context, index name.Digest, indexResult verify.Result) verify.Result {
	desc, err := c.puller.Get(ctx, index) // checks the content against the digest
	if err != nil {
		return registryResult(index, "the manifest of "+index.DigestStr(), err)
	}
	if !desc.MediaType.IsIndex() {
		return indexResult
	}
	fail := func(o verify.Outcome, detail string) verify.Result {
		return verify.Result{Outcome: o, Detail: detail, Satisfied: indexResult.Satisfied}
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		// Fail closed: platforms that cannot be listed cannot be verified.
		return fail(verify.Mismatch, fmt.Sprintf("index %s does not parse: %v", index.DigestStr(), err))
	}
	var platforms []v1.Descriptor
	for _, m := range im.Manifests {
		switch {
		case m.MediaType.IsIndex():
			// Fail closed: what a nested index holds would go unverified.
			return fail(verify.Mismatch, fmt.Sprintf("index %s nests index %s; nested indexes are not verified per platform", index.DigestStr(), m.Digest))
		case m.Annotations[buildxReferenceType] == "attestation-manifest":
			// docker buildx's provenance and SBOM manifests (platform
			// unknown/unknown) run nowhere; they are not platforms.
		case m.MediaType.IsImage():
			platforms = append(platforms, m)
		}
	}
	if len(platforms) > MaxPlatforms {
		return fail(verify.Mismatch, fmt.Sprintf("index %s has %d platform manifests; at most %d are verified",
			index.DigestStr(), len(platforms), MaxPlatforms))
	}

	results := make([]verify.Result, len(platforms))
	var g errgroup.Group
	g.SetLimit(platformParallelism)
	for i, p := range platforms {
		g.Go(func() error {
			results[i] = c.verifyDigest(ctx, index.Context().Digest(p.Digest.String()))
			return nil
		})
	}
	_ = g.Wait() // the goroutines return no error

	// Report the first platform that failed, preferring a definitive failure
	// to a transient one: it decides the admission whatever the others say.
	failed := -1
	for i, r := range results {
		if r.Outcome != verify.Verified && (failed < 0 || results[failed].Transient() && !r.Transient()) {
			failed = i
		}
	}
	if failed < 0 {
		return indexResult
	}
	r, p := results[failed], platforms[failed]
	o := r.Outcome
	if o == verify.Unsigned {
		o = verify.Mismatch // the index is signed, one of its platforms is not
	}
	platform := "unknown"
	if p.Platform != nil {
		platform = p.Platform.String()
	}
	return fail(o, fmt.Sprintf("platform %s (%s): %s", platform, p.Digest, r.Detail))
}
