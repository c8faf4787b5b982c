package policy

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// SignatureTarget is one image the signature check needs verified, with the
// trust rule that governs it.
type SignatureTarget struct {
	Image name.Digest
	Rule  *TrustRule
	// AllPlatforms: every platform manifest of an index must verify too.
	AllPlatforms bool
}

// SignatureTargets lists, once each, the pinned images of in that the signature
// check judges and that a trust rule matches. The admission layer verifies them
// and puts the results in in.Signatures. Images without a digest are left to the
// digest check: a signature is only ever verified for a digest.
func SignatureTargets(p *Policy, in *Input) []SignatureTarget {
	cfg := &p.Checks.Signature
	if !cfg.Enabled || !NeedsJudgement(in) {
		return nil
	}
	var out []SignatureTarget
	for _, d := range pinnedImages(in) {
		if r := cfg.RuleFor(d.String()); r != nil {
			out = append(out, SignatureTarget{Image: d, Rule: r, AllPlatforms: cfg.MultiArch == MultiArchPlatforms})
		}
	}
	return out
}

// eachPinnedImage calls fn for each image field of in that is judged (see
// eachNewImage) and pinned by digest: the checks that verify, inspect or scan
// an image leave the others to the digest check.
func eachPinnedImage(in *Input, fn func(image string, path *field.Path)) {
	eachNewImage(in, func(image string, path *field.Path, _ string) {
		if _, ok := digestOf(image); ok {
			fn(image, path)
		}
	})
}

// pinnedImages lists, once each, the images of in that are judged (see
// eachNewImage) and pinned by digest.
func pinnedImages(in *Input) []name.Digest {
	var out []name.Digest
	seen := map[string]bool{}
	eachPinnedImage(in, func(image string, _ *field.Path) {
		if !seen[image] {
			seen[image] = true
			d, _ := digestOf(image)
			out = append(out, d)
		}
	})
	return out
}

// checkSignature: every image carries valid cosign signatures from the
// authorities of the trust rule that matches it, verified for its digest.
//
// Inspects: every image field (as EachImage) and in.Signatures, the results the
// admission layer obtained for SignatureTargets. Validate stage only.
// On a Pod UPDATE only new containers and changed images are judged.
func checkSignature(p *Policy, in *Input) []Verdict {
	cfg := &p.Checks.Signature
	if !cfg.Enabled {
		return nil
	}
	act := actionFor(cfg.Mode)
	var out []Verdict
	eachPinnedImage(in, func(image string, path *field.Path) {
		v := Verdict{Check: CheckSignature, Action: act, Path: path.String()}
		rule := cfg.RuleFor(image)
		if rule == nil {
			if cfg.NoMatch == OutcomeAllow {
				return
			}
			v.Action = outcomeAction(cfg.NoMatch, act)
			v.Reason, v.Detail = ReasonNoTrustRule, fmt.Sprintf("%q matches no rule of checks.signature.rules", image)
			out = append(out, v)
			return
		}
		res, ok := in.Signatures[image]
		if !ok {
			// Fail closed: an image whose verification did not happen (budget
			// spent, verifier missing) is not trusted.
			res = verify.Result{Detail: "not verified"}
		}
		v.Reason = signatureReason(res.Outcome)
		if v.Reason == "" {
			return
		}
		v.Detail = fmt.Sprintf("%q (rule %q, authorities %s): %s", image, rule.Name, rule.AuthorityNames(), res.Detail)
		out = append(out, v)
	})
	return out
}

// signatureReason maps an outcome to the reason of its verdict, "" when verified.
// A registry that cannot be reached denies too (in enforce mode): bulwark cannot
// tell an outage from an attack that hides a signature, and what was verified
// before is still admitted from the cache.
func signatureReason(o verify.Outcome) Reason {
	switch o {
	case verify.Verified:
		return ""
	case verify.Unsigned:
		return ReasonImageUnsigned
	case verify.Mismatch:
		return ReasonSignatureMismatch
	case verify.AttestationMissing:
		return ReasonAttestationMissing
	case verify.NotAllowed:
		return ReasonRegistryNotAllowed
	case verify.Unauthorized:
		return ReasonRegistryUnauthorized
	case verify.Unavailable:
		return ReasonRegistryUnavailable
	default:
		return ReasonSignatureUnverified
	}
}

// ResolveTargets lists, once each, the tagged images without a digest that the
// mutating pass resolves when checks.digest.pinning is resolve.
func ResolveTargets(p *Policy, in *Input) []name.Tag {
	if p.Checks.Digest.Pinning != PinningResolve || in.Stage != StageMutate || !NeedsJudgement(in) {
		return nil
	}
	var out []name.Tag
	seen := map[string]bool{}
	eachNewImage(in, func(image string, _ *field.Path, _ string) {
		if seen[image] {
			return
		}
		seen[image] = true
		if t, err := name.NewTag(image, name.StrictValidation); err == nil {
			out = append(out, t)
		} else if t, err := name.NewTag(image); err == nil && !Pinned(image) {
			// Weak validation fills in docker.io and latest, as the kubelet does.
			out = append(out, t)
		}
	})
	return out
}

// resolvePatches replaces each image the mutating pass resolved with its
// repo:tag@sha256:… reference.
func resolvePatches(in *Input) []Patch {
	if len(in.Resolved) == 0 {
		return nil
	}
	var out []Patch
	eachNewImage(in, func(image string, _ *field.Path, pointer string) {
		if r, ok := in.Resolved[image]; ok {
			out = append(out, Patch{Op: "replace", Path: pointer, Value: r})
		}
	})
	return out
}

// eachNewImage calls fn for each image field of in that is judged: all of them,
// except on a Pod UPDATE, where only new containers and changed images are.
func eachNewImage(in *Input, fn func(image string, path *field.Path, pointer string)) {
	var ch *changes
	if in.Pod {
		ch = newChanges(in.OldSpec)
	}
	eachImage(in.Spec, in.SpecPath, func(key, image string, path *field.Path, pointer string) {
		if ch.imageIsNew(key, image) {
			fn(image, path, pointer)
		}
	})
}

// digestOf returns image as a digest reference when it is validly pinned.
func digestOf(image string) (name.Digest, bool) {
	if !Pinned(image) {
		return name.Digest{}, false
	}
	d, err := name.NewDigest(image)
	return d, err == nil
}
