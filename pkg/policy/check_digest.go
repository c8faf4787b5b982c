package policy

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// checkDigest: every image must be pinned by content digest, so what was verified
// and scanned is exactly what runs.
//
// Inspects: <spec>.initContainers[*].image, .containers[*].image,
// .ephemeralContainers[*].image, .volumes[*].image.reference.
// Allowed: repo@sha256:<64 hex>, repo:tag@sha256:<64 hex>.
// On a Pod UPDATE only new containers and changed images are judged.
func checkDigest(p *Policy, in *Input, ch *changes) []Verdict {
	var out []Verdict
	act := actionFor(p.Checks.Digest.Mode)
	eachImage(in.Spec, in.SpecPath, func(key, image string, path *field.Path, _ string) {
		if !ch.imageIsNew(key, image) {
			return
		}
		if reason, detail := judgeImage(image); reason != "" {
			out = append(out, Verdict{Check: CheckDigest, Reason: reason, Action: act, Path: path.String(), Detail: detail})
		}
	})
	return out
}

// judgeImage returns the reason and detail why image is not acceptably pinned, or ""
// when it is. The reference is parsed by go-containerregistry, never split by hand.
func judgeImage(image string) (Reason, string) {
	ref, err := name.ParseReference(image)
	if err != nil {
		// ParseReference only says "could not parse"; the specific parser says why.
		if strings.Contains(image, "@") {
			_, err = name.NewDigest(image)
		} else {
			_, err = name.NewTag(image)
		}
		return ReasonImageInvalid, fmt.Sprintf("%q: %v", image, err)
	}
	d, ok := ref.(name.Digest)
	if !ok {
		return ReasonImageNotPinned, fmt.Sprintf("%q; pin it as %s@sha256:<digest> (`crane digest %s` prints the digest)", image, image, image)
	}
	h, err := v1.NewHash(d.DigestStr())
	if err != nil || h.Algorithm != "sha256" {
		return ReasonImageNotPinned, fmt.Sprintf("%q; only sha256 digests are accepted", image)
	}
	return "", ""
}

// Pinned reports whether image is a valid reference pinned by a sha256 digest.
func Pinned(image string) bool {
	r, _ := judgeImage(image)
	return r == ""
}
