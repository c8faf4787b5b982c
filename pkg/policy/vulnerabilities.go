package policy

import (
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/bulwark-dev/bulwark/pkg/scan"
)

// Severities from the most to the least severe, as grype reports them.
var Severities = []string{"Critical", "High", "Medium", "Low", "Negligible", "Unknown"}

// severityRank: Critical 5 … Unknown 0 (as scan.Severity ranks them); -1 for
// anything that is not exactly one of Severities.
func severityRank(s string) int {
	if !slices.Contains(Severities, s) {
		return -1
	}
	return scan.Severity(s).Rank()
}

// Outcome is what happens to an image a check cannot judge as usual: no trust
// rule matches it, it declares no base, its scan is still running or was made
// with a database too old.
type Outcome string

const (
	OutcomeDeny  Outcome = "deny"
	OutcomeWarn  Outcome = "warn"
	OutcomeAllow Outcome = "allow"
)

var outcomes = []Outcome{OutcomeDeny, OutcomeWarn, OutcomeAllow}

func validateOutcome(path *field.Path, o Outcome) field.ErrorList {
	if slices.Contains(outcomes, o) {
		return nil
	}
	return field.ErrorList{field.NotSupported(path, o, outcomes)}
}

// Defaults of the vulnerabilities check.
const (
	DefaultMaxDBAge        = 5 * 24 * time.Hour
	DefaultStaleScanWindow = 24 * time.Hour
)

// VulnerabilitiesConfig configures the vulnerabilities check: images are scanned
// (ImageScan objects, by digest) and findings at or above Threshold deny. The
// check is off until Enabled is set, because it needs a scanner and a database.
type VulnerabilitiesConfig struct {
	// Enabled turns the check on. Default false.
	Enabled bool `json:"enabled"`
	// Mode defaults to enforce.
	Mode Mode `json:"mode"`
	// Images are the images scanned and judged, as patterns (as in signature
	// rules). Default ["**"]: every image.
	Images []string `json:"images"`
	// Threshold is the lowest severity that counts. Default Critical.
	Threshold string `json:"threshold"`
	// OnlyFixed ignores findings without a fixed version. Default false.
	OnlyFixed bool `json:"onlyFixed"`
	// Ignore lists findings accepted for a reason until a date.
	Ignore []IgnoreRule `json:"ignore"`
	// Namespaces override Threshold per namespace.
	Namespaces []NamespaceThreshold `json:"namespaces"`
	// Pending: what happens while an image's scan has not completed within the
	// request's budget: deny (with "retry in about N s"), warn, or allow (audit
	// only). Default deny.
	Pending Outcome `json:"pending"`
	// MaxDBAge: a scan made with a database older than this is not trusted; its
	// image gets StaleDB. Default 120h.
	MaxDBAge metav1.Duration `json:"maxDBAge"`
	// StaleDB: what happens when the database is older than MaxDBAge. Default deny.
	StaleDB Outcome `json:"staleDB"`
	// StaleScanWindow: a complete scan made with an older database than the
	// scanner's current one is still used for this long while a rescan runs.
	// Default 24h.
	StaleScanWindow metav1.Duration `json:"staleScanWindow"`
	// Platforms to scan of a multi-platform image. Default linux/amd64 and
	// linux/arm64 (those present).
	Platforms []string `json:"platforms"`
}

// IgnoreRule accepts one finding, optionally only for a package, some images or
// some namespaces, for a reason, until Expires.
type IgnoreRule struct {
	// ID is the vulnerability id (CVE-2024-3094, GHSA-…).
	ID string `json:"id"`
	// Package, if set, limits the rule to that package name.
	Package string `json:"package,omitempty"`
	// Images, if set, limits the rule to images matching one of the patterns.
	Images []string `json:"images,omitempty"`
	// Namespaces, if set, limits the rule to those namespaces.
	Namespaces []string `json:"namespaces,omitempty"`
	// Reason is required: a ticket or a sentence.
	Reason string `json:"reason"`
	// Expires is required: the rule stops applying at this time.
	Expires metav1.Time `json:"expires"`
}

// NamespaceThreshold overrides the threshold in one namespace.
type NamespaceThreshold struct {
	Namespace string `json:"namespace"`
	Threshold string `json:"threshold"`
}

var vulnID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9_.:-]{0,80}$`)

func (c *VulnerabilitiesConfig) validate(fp *field.Path) field.ErrorList {
	errs := validateMode(fp.Child("mode"), c.Mode)
	if severityRank(c.Threshold) < 0 {
		errs = append(errs, field.NotSupported(fp.Child("threshold"), c.Threshold, Severities))
	}
	errs = append(errs, validateOutcome(fp.Child("pending"), c.Pending)...)
	errs = append(errs, validateOutcome(fp.Child("staleDB"), c.StaleDB)...)
	if c.MaxDBAge.Duration <= 0 {
		errs = append(errs, field.Invalid(fp.Child("maxDBAge"), c.MaxDBAge.Duration.String(), "must be positive"))
	}
	if c.StaleScanWindow.Duration < 0 {
		errs = append(errs, field.Invalid(fp.Child("staleScanWindow"), c.StaleScanWindow.Duration.String(), "must not be negative"))
	}
	for i, pat := range c.Images {
		if !validPattern(pat) {
			errs = append(errs, field.Invalid(fp.Child("images").Index(i), pat, "not a valid image pattern"))
		}
	}
	for i, p := range c.Platforms {
		if parts := strings.Split(p, "/"); len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
			errs = append(errs, field.Invalid(fp.Child("platforms").Index(i), p, "must be os/arch or os/arch/variant"))
		}
	}
	for i, r := range c.Ignore {
		ip := fp.Child("ignore").Index(i)
		if !vulnID.MatchString(r.ID) {
			errs = append(errs, field.Invalid(ip.Child("id"), r.ID, "must be a vulnerability id such as CVE-2024-3094"))
		}
		if strings.TrimSpace(r.Reason) == "" {
			errs = append(errs, field.Required(ip.Child("reason"), "why the finding is accepted"))
		}
		if r.Expires.IsZero() {
			errs = append(errs, field.Required(ip.Child("expires"), "when the rule stops applying"))
		}
		for j, pat := range r.Images {
			if !validPattern(pat) {
				errs = append(errs, field.Invalid(ip.Child("images").Index(j), pat, "not a valid image pattern"))
			}
		}
	}
	for i, n := range c.Namespaces {
		np := fp.Child("namespaces").Index(i)
		if n.Namespace == "" {
			errs = append(errs, field.Required(np.Child("namespace"), ""))
		}
		if severityRank(n.Threshold) < 0 {
			errs = append(errs, field.NotSupported(np.Child("threshold"), n.Threshold, Severities))
		}
	}
	return errs
}
