package policy

import (
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

const (
	// DefaultSignatureCacheTTL is how long a verified signature is trusted
	// before the registry is asked again.
	DefaultSignatureCacheTTL = 10 * time.Minute
	// DefaultRegistryTimeout bounds each registry call.
	DefaultRegistryTimeout = 1500 * time.Millisecond

	maxTrustRules  = 256
	maxAuthorities = 16
)

// SignatureConfig configures the signature check: which authorities must have
// signed which images. The check is off until Enabled is set, because it needs a
// trust policy the operator writes.
type SignatureConfig struct {
	// Enabled turns the check on. Default false.
	Enabled bool `json:"enabled"`
	// Mode defaults to enforce.
	Mode Mode `json:"mode"`
	// NoMatch: what happens to an image no rule matches. Default deny.
	NoMatch Outcome `json:"noMatch"`
	// Rules map image patterns to authorities; the most specific matching
	// pattern wins.
	Rules []TrustRule `json:"rules"`
	// CacheTTL: how long a verified digest is not verified again. Default 10m.
	CacheTTL metav1.Duration `json:"cacheTTL"`
	// MultiArch: for an image that is an index, "index" (a signature on the
	// index suffices) or "platforms" (every platform manifest must verify too).
	// Default index.
	MultiArch MultiArch `json:"multiArch"`
}

// MultiArch says what must be signed for a multi-platform image.
type MultiArch string

const (
	MultiArchIndex     MultiArch = "index"
	MultiArchPlatforms MultiArch = "platforms"
)

// TrustRule names the authorities whose signatures images matching Images must
// carry.
type TrustRule struct {
	Name string `json:"name"`
	// Images are patterns over the image's repository, registry included
	// (ghcr.io/acme/web): "*" matches within one path segment, a trailing "/**"
	// matches any depth, "**" alone matches every image. docker.io means
	// index.docker.io.
	Images      []string           `json:"images"`
	Authorities []verify.Authority `json:"authorities"`
	// Threshold is how many distinct authorities must have signed; default 1.
	Threshold int `json:"threshold,omitempty"`
	// Attestations are in-toto predicate types (https://slsa.dev/provenance/v1,
	// https://spdx.dev/Document, …) of which the image must also carry an
	// attestation verified against the same authorities and threshold.
	Attestations []string `json:"attestations,omitempty"`
}

// RegistryConfig is bulwark's egress policy towards registries.
type RegistryConfig struct {
	// Allow lists the registries bulwark may contact ("host" or "host:port");
	// nothing else is ever contacted. Default none.
	Allow []string `json:"allow"`
	// AllowAddresses are non-public destinations (CIDR) that may be dialled
	// anyway, e.g. a registry on a private network. Default none: loopback,
	// link-local and private addresses are refused.
	AllowAddresses []string `json:"allowAddresses"`
	// Insecure lists registries (host:port) reached over plain HTTP. Default none.
	Insecure []string `json:"insecure"`
	// Mirrors maps a registry to a mirror serving the same repositories (and
	// signatures) under the same paths; requests go to the mirror, which must
	// be on Allow. Default none.
	Mirrors map[string]string `json:"mirrors"`
	// Timeout bounds each registry request. Default 1.5s: a registry that does
	// not answer costs an admission at most that long before it is denied.
	Timeout metav1.Duration `json:"timeout"`
}

// Prefixes returns AllowAddresses parsed; Validate has checked them.
func (c *RegistryConfig) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.AllowAddresses {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// RuleFor returns the trust rule for image, or nil when none matches. Among
// matching patterns the one with the most literal characters wins; on a tie, the
// earlier rule.
func (c *SignatureConfig) RuleFor(image string) *TrustRule {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil
	}
	repo := ref.Context().Name()
	var best *TrustRule
	bestScore := -1
	for i := range c.Rules {
		for _, pat := range c.Rules[i].Images {
			if s := specificity(pat); s > bestScore && matchImage(pat, repo) {
				best, bestScore = &c.Rules[i], s
			}
		}
	}
	return best
}

func normalizePattern(pat string) string {
	if strings.HasPrefix(pat, "docker.io/") {
		return "index." + pat
	}
	return pat
}

func matchImage(pat, repo string) bool {
	pat = normalizePattern(pat)
	switch {
	case pat == "**":
		return true
	case strings.HasSuffix(pat, "/**"):
		dir := strings.TrimSuffix(pat, "/**")
		// The directory part may itself hold single-segment wildcards.
		for d := repo; strings.Contains(d, "/"); {
			d = d[:strings.LastIndex(d, "/")]
			if ok, _ := path.Match(dir, d); ok {
				return true
			}
		}
		return false
	default:
		ok, _ := path.Match(pat, repo)
		return ok
	}
}

// specificity counts a pattern's literal characters; a trailing "/**" counts for
// nothing, so ghcr.io/acme/* beats ghcr.io/acme/**.
func specificity(pat string) int {
	pat = strings.TrimSuffix(normalizePattern(pat), "/**")
	return len(pat) - strings.Count(pat, "*")
}

// AuthorityNames lists the rule's authorities for messages.
func (r *TrustRule) AuthorityNames() string {
	names := make([]string, len(r.Authorities))
	for i, a := range r.Authorities {
		names[i] = `"` + a.Name + `"`
	}
	s := strings.Join(names, ", ")
	if r.Threshold > 1 {
		return s + " (" + strconv.Itoa(r.Threshold) + " of them)"
	}
	return s
}

func (c *SignatureConfig) validate(fp *field.Path) field.ErrorList {
	errs := validateMode(fp.Child("mode"), c.Mode)
	errs = append(errs, validateOutcome(fp.Child("noMatch"), c.NoMatch)...)
	if c.MultiArch != MultiArchIndex && c.MultiArch != MultiArchPlatforms {
		errs = append(errs, field.NotSupported(fp.Child("multiArch"), c.MultiArch, []MultiArch{MultiArchIndex, MultiArchPlatforms}))
	}
	if c.CacheTTL.Duration < 0 {
		errs = append(errs, field.Invalid(fp.Child("cacheTTL"), c.CacheTTL.Duration.String(), "must not be negative"))
	}
	if len(c.Rules) > maxTrustRules {
		errs = append(errs, field.TooMany(fp.Child("rules"), len(c.Rules), maxTrustRules))
	}
	names := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		rp := fp.Child("rules").Index(i)
		switch {
		case r.Name == "":
			errs = append(errs, field.Required(rp.Child("name"), "a name for messages"))
		case names[r.Name]:
			errs = append(errs, field.Duplicate(rp.Child("name"), r.Name))
		}
		names[r.Name] = true
		if len(r.Images) == 0 {
			errs = append(errs, field.Required(rp.Child("images"), "at least one image pattern"))
		}
		for j, pat := range r.Images {
			if !validPattern(pat) {
				errs = append(errs, field.Invalid(rp.Child("images").Index(j), pat, "not a valid image pattern"))
			}
		}
		switch n := len(r.Authorities); {
		case n == 0:
			errs = append(errs, field.Required(rp.Child("authorities"), "at least one authority"))
		case n > maxAuthorities:
			errs = append(errs, field.TooMany(rp.Child("authorities"), n, maxAuthorities))
		}
		if r.Threshold < 0 || r.Threshold > len(r.Authorities) {
			errs = append(errs, field.Invalid(rp.Child("threshold"), r.Threshold, "must be between 1 and the number of authorities"))
		}
		for j, pt := range r.Attestations {
			if strings.TrimSpace(pt) == "" || strings.ContainsAny(pt, " \t\n") {
				errs = append(errs, field.Invalid(rp.Child("attestations").Index(j), pt, "must be an in-toto predicate type URI"))
			}
		}
		anames := map[string]bool{}
		for j := range r.Authorities {
			ap := rp.Child("authorities").Index(j)
			a := &r.Authorities[j]
			if a.Name == "" {
				errs = append(errs, field.Required(ap.Child("name"), "a name for messages"))
			} else if anames[a.Name] {
				errs = append(errs, field.Duplicate(ap.Child("name"), a.Name))
			}
			anames[a.Name] = true
			errs = append(errs, validateAuthority(ap, a)...)
		}
	}
	return errs
}

func validateAuthority(p *field.Path, a *verify.Authority) field.ErrorList {
	var errs field.ErrorList
	switch {
	case (a.Key == nil) == (a.Keyless == nil):
		return field.ErrorList{field.Invalid(p, a.Name, "set exactly one of key and keyless")}
	case a.Key != nil:
		kp := p.Child("key")
		switch {
		case (a.Key.PEM == "") == (a.Key.SecretRef == nil):
			errs = append(errs, field.Invalid(kp, "", "set exactly one of pem and secretRef"))
		case a.Key.PEM != "":
			if err := checkPublicKeyPEM(a.Key.PEM); err != "" {
				errs = append(errs, field.Invalid(kp.Child("pem"), "<PEM>", err))
			}
		default:
			if a.Key.SecretRef.Name == "" || a.Key.SecretRef.Key == "" {
				errs = append(errs, field.Required(kp.Child("secretRef"), "name and key of a Secret in bulwark's namespace"))
			}
		}
	default:
		kl, kp := a.Keyless, p.Child("keyless")
		if (kl.Issuer == "") == (kl.IssuerRegExp == "") {
			errs = append(errs, field.Invalid(kp.Child("issuer"), kl.Issuer, "set exactly one of issuer and issuerRegExp"))
		}
		if (kl.Subject == "") == (kl.SubjectRegExp == "") {
			errs = append(errs, field.Invalid(kp.Child("subject"), kl.Subject, "set exactly one of subject and subjectRegExp"))
		}
		for f, re := range map[string]string{"issuerRegExp": kl.IssuerRegExp, "subjectRegExp": kl.SubjectRegExp} {
			if _, err := regexp.Compile(re); err != nil {
				errs = append(errs, field.Invalid(kp.Child(f), re, err.Error()))
			}
		}
		if kl.TrustedRoot == "" {
			errs = append(errs, field.Required(kp.Child("trustedRoot"), "path of a PEM file with the Fulcio root certificates (and Rekor public keys)"))
		}
	}
	return errs
}

// checkPublicKeyPEM returns why s is not one PEM-encoded public key, or "".
func checkPublicKeyPEM(s string) string {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return "not a PEM \"PUBLIC KEY\" block"
	}
	if _, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		return "not a public key: " + err.Error()
	}
	return ""
}

func (c *RegistryConfig) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, h := range c.Allow {
		if !validHost(h) {
			errs = append(errs, field.Invalid(p.Child("allow").Index(i), h, "must be a registry host or host:port"))
		}
	}
	for i, h := range c.Insecure {
		if !validHost(h) {
			errs = append(errs, field.Invalid(p.Child("insecure").Index(i), h, "must be a registry host or host:port"))
		}
	}
	for from, to := range c.Mirrors {
		if !validHost(from) || !validHost(to) {
			errs = append(errs, field.Invalid(p.Child("mirrors").Key(from), to, "registry and mirror must be host or host:port"))
		} else if !slices.Contains(c.Allow, to) {
			errs = append(errs, field.Invalid(p.Child("mirrors").Key(from), to, "the mirror must be on registry.allow"))
		}
	}
	for i, s := range c.AllowAddresses {
		if _, err := parsePrefix(s); err != nil {
			errs = append(errs, field.Invalid(p.Child("allowAddresses").Index(i), s, "must be an IP address or CIDR"))
		}
	}
	if c.Timeout.Duration <= 0 || c.Timeout.Duration > 30*time.Second {
		errs = append(errs, field.Invalid(p.Child("timeout"), c.Timeout.Duration.String(), "must be positive and at most 30s"))
	}
	return errs
}

func validPattern(pat string) bool {
	_, err := path.Match(strings.TrimSuffix(pat, "/**"), "x")
	return err == nil && pat != ""
}

func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/@ ") {
		return false
	}
	_, err := name.NewRegistry(h, name.StrictValidation)
	return err == nil
}
