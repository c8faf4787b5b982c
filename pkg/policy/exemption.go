package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Annotations through which operators grant exemptions, on a Pod, a workload (its
// own metadata or its pod template) or a Namespace.
const (
	// AnnotationExempt lists what is exempted: checks ("digest,hardening") or
	// single findings of a check ("vulnerabilities:CVE-2024-3094").
	AnnotationExempt = "bulwark.dev/exempt"
	// AnnotationExemptReason is required: a ticket or a sentence.
	AnnotationExemptReason = "bulwark.dev/exempt-reason"
	// AnnotationExemptUntil is required: a date (2026-12-31, meaning the end of that
	// day in UTC) or an RFC 3339 time, at most the policy's maximum window ahead.
	AnnotationExemptUntil = "bulwark.dev/exempt-until"
	// AnnotationExemptGrant is written by bulwark alone, on a workload's pod
	// template, when an authorised user's exemption is admitted. It carries that
	// authorisation to the pods the workload's controllers create.
	AnnotationExemptGrant = "bulwark.dev/exempt-grant"

	// MaxExemptReason bounds the reason's length in bytes.
	MaxExemptReason = 256
	// maxExemptTargets bounds how many checks or findings one exemption lists.
	maxExemptTargets = 32
)

// ExemptableChecks are the check ids an exemption may name, including checks that
// later versions add, so a policy written today stays valid.
var ExemptableChecks = []CheckID{CheckDigest, CheckSignature, CheckVulnerabilities, CheckHardening, CheckBaseImage}

// Origin says where an exemption was found.
type Origin string

const (
	OriginNamespace Origin = "namespace"
	OriginObject    Origin = "object"
	OriginTemplate  Origin = "template"
	// OriginPolicy: an ignore rule of the policy file.
	OriginPolicy Origin = "policy"
)

// ExemptTarget is one entry of AnnotationExempt: a whole check, or one finding of it.
type ExemptTarget struct {
	Check   CheckID
	Finding string // empty: the whole check
}

func (t ExemptTarget) String() string {
	if t.Finding == "" {
		return string(t.Check)
	}
	return string(t.Check) + ":" + t.Finding
}

// Exemption is a parsed exemption.
type Exemption struct {
	Origin  Origin
	Targets []ExemptTarget
	Reason  string
	Until   time.Time
	// GrantedBy is who authorised it: the requester, the grant's signer, or for a
	// namespace exemption "namespace <name>".
	GrantedBy string
	// raw holds the three annotation values as written, which a grant signs.
	raw [3]string
}

// Covers reports whether e exempts check c (finding "" meaning any).
func (e *Exemption) Covers(c CheckID, finding string) bool {
	for _, t := range e.Targets {
		if t.Check == c && (t.Finding == "" || t.Finding == finding) {
			return true
		}
	}
	return false
}

// Checks returns the distinct checks e names, in order.
func (e *Exemption) Checks() []CheckID {
	var out []CheckID
	for _, t := range e.Targets {
		if !slices.Contains(out, t.Check) {
			out = append(out, t.Check)
		}
	}
	return out
}

// RejectCause is why an exemption is not honoured. It labels metrics and Events.
type RejectCause string

const (
	RejectMalformed     RejectCause = "Malformed"
	RejectIncomplete    RejectCause = "Incomplete"
	RejectExpired       RejectCause = "Expired"
	RejectBeyondWindow  RejectCause = "BeyondMaxWindow"
	RejectUnauthorized  RejectCause = "Unauthorized"
	RejectGrantNotValid RejectCause = "GrantNotValid"
	// RejectUnverifiable: the facts needed to honour it could not be read.
	RejectUnverifiable RejectCause = "Unverifiable"
)

// Rejection is an exemption that is not honoured, and why. The request is judged
// as if the exemption were absent.
type Rejection struct {
	Origin  Origin
	Cause   RejectCause
	Message string
}

func (r Rejection) String() string {
	return fmt.Sprintf("exemption on the %s not honoured: %s", r.Origin, r.Message)
}

// HasExemption reports whether ann carries any exemption annotation.
func HasExemption(ann map[string]string) bool {
	_, a := ann[AnnotationExempt]
	_, b := ann[AnnotationExemptReason]
	_, c := ann[AnnotationExemptUntil]
	return a || b || c
}

// ParseExemption reads the exemption annotations of ann, as found at origin. It
// returns (nil, nil) when there are none, and a Rejection when they are malformed,
// incomplete, expired or reach beyond the policy's maximum window from now.
func ParseExemption(ann map[string]string, origin Origin, now time.Time, cfg *ExemptionConfig) (*Exemption, *Rejection) {
	if !HasExemption(ann) {
		return nil, nil
	}
	reject := func(c RejectCause, format string, args ...any) (*Exemption, *Rejection) {
		return nil, &Rejection{Origin: origin, Cause: c, Message: fmt.Sprintf(format, args...)}
	}
	rawTargets, reason, rawUntil := ann[AnnotationExempt], ann[AnnotationExemptReason], ann[AnnotationExemptUntil]
	e := &Exemption{Origin: origin, raw: [3]string{rawTargets, reason, rawUntil}}

	if strings.TrimSpace(rawTargets) == "" {
		return reject(RejectIncomplete, "%s is missing or empty", AnnotationExempt)
	}
	entries := strings.Split(rawTargets, ",")
	if len(entries) > maxExemptTargets {
		return reject(RejectMalformed, "%s lists %d entries, more than %d", AnnotationExempt, len(entries), maxExemptTargets)
	}
	for _, entry := range entries {
		entry = strings.TrimSpace(entry)
		check, finding, _ := strings.Cut(entry, ":")
		if !slices.Contains(ExemptableChecks, CheckID(check)) {
			return reject(RejectMalformed, "%s: unknown check %q (known: %s)", AnnotationExempt, check, joinChecks(ExemptableChecks))
		}
		if strings.Contains(entry, ":") && !validFinding(finding) {
			return reject(RejectMalformed, "%s: finding %q of check %s is not a valid id", AnnotationExempt, finding, check)
		}
		e.Targets = append(e.Targets, ExemptTarget{Check: CheckID(check), Finding: finding})
	}

	if len(reason) > MaxExemptReason {
		return reject(RejectMalformed, "%s is %d bytes, more than %d", AnnotationExemptReason, len(reason), MaxExemptReason)
	}
	// Control characters are dropped before judging, so a reason cannot be made of
	// them alone.
	e.Reason = strings.TrimSpace(sanitize(reason))
	if e.Reason == "" {
		return reject(RejectIncomplete, "%s is required: say why, e.g. a ticket", AnnotationExemptReason)
	}

	if strings.TrimSpace(rawUntil) == "" {
		return reject(RejectIncomplete, "%s is required: a date (2026-12-31) or an RFC 3339 time", AnnotationExemptUntil)
	}
	until, dateOnly, err := parseUntil(rawUntil)
	if err != nil {
		return reject(RejectMalformed, "%s %q is neither a date (2026-12-31) nor an RFC 3339 time", AnnotationExemptUntil, rawUntil)
	}
	if !until.After(now) {
		return reject(RejectExpired, "%s %s has passed", AnnotationExemptUntil, until.UTC().Format(time.RFC3339))
	}
	// A date may be as late as the day the window ends on; it means that whole day.
	latest := now.Add(cfg.MaxWindow.Duration)
	if dateOnly {
		latest = latest.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	}
	if limit := latest; until.After(limit) {
		return reject(RejectBeyondWindow, "%s %s is more than the maximum window of %s ahead (latest allowed: %s)",
			AnnotationExemptUntil, until.UTC().Format(time.RFC3339), days(cfg.MaxWindow.Duration), limit.UTC().Format(time.RFC3339))
	}
	e.Until = until
	return e, nil
}

// parseUntil accepts a date, meaning up to the end of that day in UTC, or an
// RFC 3339 time.
func parseUntil(s string) (until time.Time, dateOnly bool, err error) {
	s = strings.TrimSpace(s)
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d.Add(24 * time.Hour), true, nil
	}
	until, err = time.Parse(time.RFC3339, s)
	return until, false, err
}

func validFinding(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r)) || r > unicode.MaxASCII {
			return false
		}
	}
	return true
}

// sanitize drops control characters, so a reason cannot forge lines in messages.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

func joinChecks(cs []CheckID) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// GrantSubject is what a grant is bound to: the namespace and the workload that
// owns the pods (for a ReplicaSet made by a Deployment, the Deployment).
type GrantSubject struct {
	Namespace string
	Kind      string
	Name      string
}

func (s GrantSubject) String() string { return s.Kind + " " + s.Namespace + "/" + s.Name }

const grantVersion = "v1"

// SignGrant returns the AnnotationExemptGrant value binding e, as written, to
// subject and to the user who granted it, with an HMAC-SHA256 under key.
func SignGrant(key []byte, subject GrantSubject, e *Exemption, grantedBy string) string {
	return grantVersion + "." + base64.RawURLEncoding.EncodeToString([]byte(grantedBy)) + "." +
		base64.RawURLEncoding.EncodeToString(grantMAC(key, subject, e.raw, grantedBy))
}

// VerifyGrant checks a grant value against subject and e, and returns who granted
// it. Any edit of the exemption, another namespace or another workload fails.
func VerifyGrant(key []byte, subject GrantSubject, e *Exemption, value string) (string, error) {
	return verifyGrant(key, subject, e.raw, value)
}

// VerifyGrantAnnotations is VerifyGrant for the exemption annotations of ann as
// they are, valid or not (an expired exemption's grant still verifies).
func VerifyGrantAnnotations(key []byte, subject GrantSubject, ann map[string]string, value string) (string, error) {
	return verifyGrant(key, subject, [3]string{ann[AnnotationExempt], ann[AnnotationExemptReason], ann[AnnotationExemptUntil]}, value)
}

func verifyGrant(key []byte, subject GrantSubject, raw [3]string, value string) (string, error) {
	parts := strings.Split(value, ".")
	if len(parts) != 3 || parts[0] != grantVersion {
		return "", errors.New("grant is not in bulwark's format")
	}
	by, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("grant is not in bulwark's format")
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", errors.New("grant is not in bulwark's format")
	}
	if !hmac.Equal(mac, grantMAC(key, subject, raw, string(by))) {
		return "", fmt.Errorf("grant does not match this exemption for %s", subject)
	}
	return string(by), nil
}

func grantMAC(key []byte, subject GrantSubject, raw [3]string, grantedBy string) []byte {
	m := hmac.New(sha256.New, key)
	// Length-prefixed fields, so no two different inputs share an encoding.
	for _, f := range []string{grantVersion, subject.Namespace, subject.Kind, subject.Name, raw[0], raw[1], raw[2], grantedBy} {
		fmt.Fprintf(m, "%d:%s;", len(f), f)
	}
	return m.Sum(nil)
}

// ExemptionFacts are what admission learnt about the requester of an exemption.
type ExemptionFacts struct {
	Namespace string
	// Requester is the user making the request.
	Requester string
	// Authorized is true when the requester may exempt every check the exemption
	// names in Namespace (verb exempt on exemptions.bulwark.dev, resourceName = check).
	Authorized bool
	// MissingRight is a check the requester may not exempt, when not Authorized.
	MissingRight CheckID
	// GrantRequired says an authorised requester's exemption must also carry a
	// verified grant: on a workload's pod template, the grant is how its pods
	// inherit it, so a template without one would admit a workload whose pods
	// are all denied.
	GrantRequired bool
	// GrantedBy is the signer of a grant that verified for this exemption, or "".
	GrantedBy string
	// GrantErr is why no grant verified.
	GrantErr error
}

// Honour decides whether a parsed exemption counts, and records who granted it.
//
// A namespace exemption, and any exemption a workload controller presents, counts
// only with a grant bulwark signed when a user allowed to grant it admitted the
// Namespace or the owning workload. Any other requester must hold the right
// themselves.
func Honour(e *Exemption, f ExemptionFacts, cfg *ExemptionConfig) (*Exemption, *Rejection) {
	switch {
	case e.Origin == OriginNamespace || cfg.IsWorkloadController(f.Requester):
		if f.GrantedBy == "" {
			return nil, grantRejection(e, f)
		}
		e.GrantedBy = f.GrantedBy
	case !f.Authorized:
		return nil, Unauthorized(e, f.Requester, f.Namespace, f.MissingRight)
	case f.GrantRequired && f.GrantedBy == "":
		return nil, grantRejection(e, f)
	default:
		e.GrantedBy = f.Requester
	}
	return e, nil
}

func grantRejection(e *Exemption, f ExemptionFacts) *Rejection {
	msg := "no valid " + AnnotationExemptGrant
	if f.GrantErr != nil {
		msg = f.GrantErr.Error()
	}
	return &Rejection{Origin: e.Origin, Cause: RejectGrantNotValid, Message: msg}
}

// Unauthorized is the rejection of e because requester may not exempt check
// missing (the first of e's checks when empty) in namespace.
func Unauthorized(e *Exemption, requester, namespace string, missing CheckID) *Rejection {
	checks := e.Checks()
	if missing == "" {
		missing = checks[0]
	}
	return &Rejection{Origin: e.Origin, Cause: RejectUnauthorized, Message: fmt.Sprintf(
		"user %q may not grant exemptions from %s in namespace %s (needs verb \"exempt\" on resource \"exemptions\" in API group \"bulwark.dev\", resourceName %q)",
		requester, joinChecks(checks), namespace, string(missing))}
}

// ExpiresWithin reports whether e ends within window of now.
func (e *Exemption) ExpiresWithin(now time.Time, window time.Duration) bool {
	return e.Until.Sub(now) <= window
}
