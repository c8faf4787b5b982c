package policy

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// BaseImageConfig configures the base-image check.
type BaseImageConfig struct {
	// Enabled turns the check on. Default false.
	Enabled bool `json:"enabled"`
	// Mode defaults to enforce.
	Mode Mode `json:"mode"`
	// Approved are patterns (as in signature rules) over the repository of the
	// declared base; empty: any base, as long as it is pinned.
	Approved []string `json:"approved"`
	// Undeclared: what happens to an image that declares no base: deny (with
	// the check's mode), warn or allow. Default allow.
	Undeclared Outcome `json:"undeclared"`
}

// BaseImageTargets lists, once each, the pinned images whose declared base the
// base-image check judges; the admission layer reads them into in.Bases.
func BaseImageTargets(p *Policy, in *Input) []name.Digest {
	if !p.Checks.BaseImage.Enabled || !NeedsJudgement(in) {
		return nil
	}
	return pinnedImages(in)
}

// checkBaseImage: an image that declares the image it was built on (the OCI
// annotations org.opencontainers.image.base.name and .base.digest on its
// manifest, or on each platform manifest) must declare it pinned by digest and,
// when the policy lists approved bases, one of those.
//
// Inspects: every image field (as EachImage) and in.Bases. Validate stage only.
func checkBaseImage(p *Policy, in *Input) []Verdict {
	cfg := &p.Checks.BaseImage
	if !cfg.Enabled {
		return nil
	}
	act := actionFor(cfg.Mode)
	var out []Verdict
	eachPinnedImage(in, func(image string, path *field.Path) {
		add := func(r Reason, detail string, a Action) {
			out = append(out, Verdict{Check: CheckBaseImage, Reason: r, Action: a, Path: path.String(), Detail: detail})
		}
		b, ok := in.Bases[image]
		if !ok {
			// Fail closed: a manifest bulwark did not read proves nothing.
			b = verify.Base{Detail: "manifest not read"}
		}
		if b.Outcome != verify.Verified {
			add(baseFailureReason(b.Outcome), fmt.Sprintf("%q: %s", image, b.Detail), act)
			return
		}
		for _, base := range b.Declared {
			on := ""
			if base.Platform != "" {
				on = " (" + base.Platform + ")"
			}
			if !basePinned(base) {
				add(ReasonBaseImageNotPinned, fmt.Sprintf("%q%s declares base %q without a digest; rebuild it FROM a base pinned by digest", image, on, base.Name), act)
				continue
			}
			if len(cfg.Approved) > 0 && !approvedBase(cfg.Approved, base.Name) {
				add(ReasonBaseImageNotApproved, fmt.Sprintf("%q%s is built on %q, which is not one of the approved bases %s", image, on, base.Name, strings.Join(cfg.Approved, ", ")), act)
			}
		}
		if len(b.Undeclared) > 0 && cfg.Undeclared != OutcomeAllow {
			add(ReasonBaseImageUndeclared, fmt.Sprintf("%q declares no base image (%s); checks.baseImage.undeclared is %s", image, strings.Join(b.Undeclared, ", "), cfg.Undeclared), outcomeAction(cfg.Undeclared, act))
		}
	})
	return out
}

// basePinned: the base digest annotation holds a sha256 digest, or the base name
// itself is pinned.
func basePinned(b verify.BaseRef) bool {
	if strings.HasPrefix(b.Digest, "sha256:") && len(b.Digest) == len("sha256:")+64 {
		return true
	}
	return Pinned(b.Name)
}

func approvedBase(patterns []string, base string) bool {
	ref, err := name.ParseReference(base)
	if err != nil {
		return false
	}
	repo := ref.Context().Name()
	for _, p := range patterns {
		if matchImage(p, repo) {
			return true
		}
	}
	return false
}

// baseFailureReason: why a manifest was not read.
func baseFailureReason(o verify.Outcome) Reason {
	switch o {
	case verify.NotAllowed:
		return ReasonRegistryNotAllowed
	case verify.Unauthorized:
		return ReasonRegistryUnauthorized
	case verify.Unavailable:
		return ReasonRegistryUnavailable
	default:
		return ReasonBaseImageUnknown
	}
}

func (c *BaseImageConfig) validate(fp *field.Path) field.ErrorList {
	errs := validateMode(fp.Child("mode"), c.Mode)
	errs = append(errs, validateOutcome(fp.Child("undeclared"), c.Undeclared)...)
	for i, pat := range c.Approved {
		if !validPattern(pat) {
			errs = append(errs, field.Invalid(fp.Child("approved").Index(i), pat, "not a valid image pattern"))
		}
	}
	return errs
}
