package policy

import "fmt"

// CheckID names a check. It is stable: it appears in policy files, exemption
// annotations, audit annotations and metric labels.
type CheckID string

const (
	// CheckDigest requires every image to be pinned by content digest.
	CheckDigest CheckID = "digest"
	// CheckHardening injects and enforces container security settings.
	CheckHardening CheckID = "hardening"
	// CheckSignature requires cosign signatures from the authorities of the trust
	// rule that matches the image.
	CheckSignature CheckID = "signature"
	// CheckBaseImage requires the base an image declares to be pinned and approved.
	CheckBaseImage CheckID = "base-image"
	// CheckVulnerabilities denies images with findings at or above a severity.
	CheckVulnerabilities CheckID = "vulnerabilities"
)

// Mode says what a check's findings do to a request.
type Mode string

const (
	// ModeEnforce denies the request.
	ModeEnforce Mode = "enforce"
	// ModeWarn admits the request and returns an admission warning to the client.
	ModeWarn Mode = "warn"
	// ModeAudit admits the request and records the finding in the audit log only.
	ModeAudit Mode = "audit"
)

// Modes lists the valid modes in the order the documentation gives them.
var Modes = []Mode{ModeEnforce, ModeWarn, ModeAudit}

// Action is what a single verdict does. It follows from the check's Mode.
type Action string

const (
	ActionDeny  Action = "deny"
	ActionWarn  Action = "warn"
	ActionAudit Action = "audit"
	// ActionExempt: the finding would have had another action, but an honoured
	// exemption covers it. It is recorded, never enforced.
	ActionExempt Action = "exempt"
)

func actionFor(m Mode) Action {
	switch m {
	case ModeWarn:
		return ActionWarn
	case ModeAudit:
		return ActionAudit
	default:
		// Fail closed: an unknown mode (impossible after Validate) denies.
		return ActionDeny
	}
}

// Reason is the stable, CamelCase cause of a verdict. The same value names the Event
// reason and the metric label; Text gives the short phrase used in messages, warnings
// and audit annotations.
type Reason string

const (
	ReasonImageNotPinned    Reason = "ImageNotPinned"
	ReasonImageInvalid      Reason = "ImageInvalid"
	ReasonHardeningRejected Reason = "HardeningRejected"
	ReasonHardeningMissing  Reason = "HardeningMissing"

	ReasonImageUnsigned        Reason = "ImageUnsigned"
	ReasonSignatureMismatch    Reason = "SignatureMismatch"
	ReasonNoTrustRule          Reason = "NoTrustRule"
	ReasonRegistryNotAllowed   Reason = "RegistryNotAllowed"
	ReasonRegistryUnauthorized Reason = "RegistryUnauthorized"
	ReasonRegistryUnavailable  Reason = "RegistryUnavailable"
	ReasonSignatureUnverified  Reason = "SignatureUnverified"
	ReasonAttestationMissing   Reason = "AttestationMissing"

	ReasonBaseImageNotPinned   Reason = "BaseImageNotPinned"
	ReasonBaseImageNotApproved Reason = "BaseImageNotApproved"
	ReasonBaseImageUndeclared  Reason = "BaseImageUndeclared"
	ReasonBaseImageUnknown     Reason = "BaseImageUnknown"

	ReasonImageVulnerable Reason = "ImageVulnerable"
	ReasonScanPending     Reason = "ScanPending"
	ReasonScanFailed      Reason = "ScanFailed"
	ReasonVulnDBStale     Reason = "VulnerabilityDBStale"
)

var reasonText = map[Reason]string{
	ReasonImageNotPinned:    "image not pinned by digest",
	ReasonImageInvalid:      "image reference is not valid",
	ReasonHardeningRejected: "explicit setting conflicts with hardening",
	ReasonHardeningMissing:  "hardening not applied",

	ReasonImageUnsigned:        "image is not signed",
	ReasonSignatureMismatch:    "no valid signature from a trusted authority",
	ReasonNoTrustRule:          "no trust rule matches the image",
	ReasonRegistryNotAllowed:   "registry not allowed",
	ReasonRegistryUnauthorized: "registry refused access",
	ReasonRegistryUnavailable:  "registry unavailable",
	ReasonSignatureUnverified:  "signature could not be verified",
	ReasonAttestationMissing:   "required attestation missing",

	ReasonBaseImageNotPinned:   "base image not pinned by digest",
	ReasonBaseImageNotApproved: "base image not approved",
	ReasonBaseImageUndeclared:  "image declares no base image",
	ReasonBaseImageUnknown:     "base image could not be read",

	ReasonImageVulnerable: "image has a known vulnerability",
	ReasonScanPending:     "scan in progress",
	ReasonScanFailed:      "image could not be scanned",
	ReasonVulnDBStale:     "vulnerability database too old",
}

// Text is the short, stable phrase for r that users read in kubectl output.
func (r Reason) Text() string {
	if t, ok := reasonText[r]; ok {
		return t
	}
	return string(r)
}

// Verdict is one finding of one check at one field.
type Verdict struct {
	Check  CheckID
	Reason Reason
	Action Action
	// Path is the field path of the offending value, e.g.
	// spec.template.spec.containers[1].image.
	Path string
	// Detail is the offending value and how to fix it.
	Detail string
	// Finding identifies a single finding of the check (a CVE id), if any.
	Finding string
	// Exemption is the honoured exemption that covers the verdict, when Action is
	// ActionExempt.
	Exemption *Exemption
}

// String renders v the way a user reads it in a denial message or warning.
func (v Verdict) String() string {
	return fmt.Sprintf("%s: %s (check %s): %s", v.Path, v.Reason.Text(), v.Check, v.Detail)
}

// Patch is one RFC 6902 JSONPatch operation.
type Patch struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Decision is the outcome of evaluating one object.
type Decision struct {
	Verdicts []Verdict
	// Patches harden a pod; only set in the mutating stage.
	Patches []Patch
}

// Denied reports whether any verdict denies the request.
func (d *Decision) Denied() bool {
	for _, v := range d.Verdicts {
		if v.Action == ActionDeny {
			return true
		}
	}
	return false
}

// ByAction returns the verdicts with action a, in order.
func (d *Decision) ByAction(a Action) []Verdict {
	var out []Verdict
	for _, v := range d.Verdicts {
		if v.Action == a {
			out = append(out, v)
		}
	}
	return out
}
