package v1alpha1

import (
	"fmt"
	"regexp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageScan is the vulnerability scan of one image, identified by digest. There is one
// per digest in the whole cluster, named NameFor(digest), so that every webhook replica
// finds or creates the same object; a scanner worker claims it, scans and writes the
// status.
//
// The name must match the digest in spec.image, and spec.image cannot change: a status
// always describes the content the name designates.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=iscan,categories=bulwark
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=".spec.image"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Critical",type=integer,JSONPath=".status.counts.critical"
// +kubebuilder:printcolumn:name="High",type=integer,JSONPath=".status.counts.high"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="DB",type=date,JSONPath=".status.dbBuilt",description="Build time of the vulnerability database used"
// +kubebuilder:validation:XValidation:rule="!self.spec.image.matches('@sha256:[a-f0-9]{64}$') || self.metadata.name == 'sha256-' + self.spec.image.substring(self.spec.image.size() - 64)",message="metadata.name must be sha256-<hex> of the digest in spec.image"
type ImageScan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ImageScanSpec `json:"spec"`
	// +optional
	Status ImageScanStatus `json:"status,omitzero"`
}

// ImageScanSpec says what to scan and with which pull credentials.
type ImageScanSpec struct {
	// Image is the reference scanned, pinned by digest: repo@sha256:<64 hex>. It cannot
	// change once set.
	// +required
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._/:-]*@sha256:[a-f0-9]{64}$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="image is immutable"
	Image string `json:"image"`

	// Credentials says where the pull credentials for Image come from. Nil: the scanner
	// pulls anonymously, or with its own credentials.
	// +optional
	Credentials *ScanCredentials `json:"credentials,omitempty"`

	// Platforms to scan, as os/arch[/variant] (linux/amd64, linux/arm/v7). Empty: the
	// platforms the policy names by default. Ignored for an image that is not an index.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`
	Platforms []string `json:"platforms,omitempty"`
}

// ScanCredentials names the pull credentials of a workload, the way the kubelet would
// find them: the service account's image pull secrets and the pod's own.
type ScanCredentials struct {
	// Namespace of the service account and the secrets.
	// +required
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`

	// ServiceAccountName is the service account whose imagePullSecrets are used.
	// Empty: none.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// ImagePullSecrets are names of kubernetes.io/dockerconfigjson secrets in Namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
}

// ScanPhase is where a scan stands.
// +kubebuilder:validation:Enum=Pending;Scanning;Complete;Failed
type ScanPhase string

// The phases of a scan.
const (
	// ScanPending: created, not claimed by a worker (or its claim expired).
	ScanPending ScanPhase = "Pending"
	// ScanScanning: claimed by a worker until ClaimExpires.
	ScanScanning ScanPhase = "Scanning"
	// ScanComplete: Counts and Findings hold the result.
	ScanComplete ScanPhase = "Complete"
	// ScanFailed: Reason and Message say why; Attempts counts the tries.
	ScanFailed ScanPhase = "Failed"
)

// ImageScanStatus is written by the scanner worker that holds the claim.
type ImageScanStatus struct {
	// Phase of the scan. Empty is the same as Pending.
	// +optional
	Phase ScanPhase `json:"phase,omitempty"`

	// ClaimedBy is the id of the worker scanning the image; the claim lapses at
	// ClaimExpires, after which another worker may take it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClaimedBy string `json:"claimedBy,omitempty"`
	// ClaimExpires is when the current claim lapses.
	// +optional
	ClaimExpires *metav1.Time `json:"claimExpires,omitempty"`
	// Attempts counts the claims taken on this image so far.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempts int32 `json:"attempts,omitempty"`

	// Scanner names the scanner and its version, e.g. "grype v0.121.2".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Scanner string `json:"scanner,omitempty"`
	// DBBuilt is the build time of the vulnerability database the scan used.
	// +optional
	DBBuilt *metav1.Time `json:"dbBuilt,omitempty"`
	// ScannedAt is when the scan finished.
	// +optional
	ScannedAt *metav1.Time `json:"scannedAt,omitempty"`

	// Counts are the findings by severity, including those omitted from Findings and
	// those an ignore rule matched.
	// +optional
	Counts SeverityCounts `json:"counts,omitzero"`
	// Findings lists at most 200 findings, most severe first; FindingsOmitted counts the
	// rest.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=200
	Findings []Finding `json:"findings,omitempty"`
	// FindingsOmitted is the number of findings left out of Findings by its cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FindingsOmitted int32 `json:"findingsOmitted,omitempty"`

	// Reason is a CamelCase word for why the scan failed or is incomplete, e.g.
	// ExceedsScanLimits, RegistryUnavailable.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z0-9]*$`
	Reason string `json:"reason,omitempty"`
	// Message is the detail of Reason, for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// ObservedGeneration is the metadata.generation of the spec this status describes.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// SeverityCounts counts findings by severity.
type SeverityCounts struct {
	// +optional
	// +kubebuilder:validation:Minimum=0
	Critical int32 `json:"critical"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	High int32 `json:"high"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	Medium int32 `json:"medium"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	Low int32 `json:"low"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	Negligible int32 `json:"negligible"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	Unknown int32 `json:"unknown"`
}

// Finding is one vulnerability matched in one package.
type Finding struct {
	// ID of the vulnerability: CVE-2024-3094, GHSA-…
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`
	// Severity as the scanner rates it.
	// +required
	// +kubebuilder:validation:Enum=Critical;High;Medium;Low;Negligible;Unknown
	Severity string `json:"severity"`
	// CVSS base score as a decimal string ("9.8"): CRDs avoid floats. Empty: none.
	// +optional
	// +kubebuilder:validation:MaxLength=4
	// +kubebuilder:validation:Pattern=`^(10(\.0)?|[0-9](\.[0-9])?)$`
	CVSS string `json:"cvss,omitempty"`
	// Package is the name of the affected package.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Package string `json:"package"`
	// Type of the package: deb, apk, rpm, go-module, java-archive, npm, python…
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Type string `json:"type,omitempty"`
	// Installed is the installed version.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Installed string `json:"installed,omitempty"`
	// FixedIn lists the versions that fix it, comma separated. Empty: no fix known.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	FixedIn string `json:"fixedIn,omitempty"`
	// Platform (os/arch[/variant]) of the image the package was found in, for an index.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Platform string `json:"platform,omitempty"`
	// IgnoredBy names the ignore rule that matched this finding. Empty: not ignored.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	IgnoredBy string `json:"ignoredBy,omitempty"`
}

// ImageScanList is a list of ImageScans.
//
// +kubebuilder:object:root=true
type ImageScanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageScan `json:"items"`
}

// sha256Digest is an OCI sha256 digest: lower-case hex only, as the OCI image spec
// requires of the sha256 algorithm.
var sha256Digest = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// NameFor returns the name of the ImageScan of digest ("sha256:<64 hex>"):
// "sha256-<64 hex>", the same on every replica. It rejects anything else, including a
// full reference (repo@sha256:…), another algorithm and upper-case hex.
func NameFor(digest string) (string, error) {
	if !sha256Digest.MatchString(digest) {
		return "", fmt.Errorf("image scan name for %q: not a sha256 digest (sha256:<64 lower-case hex>)", digest)
	}
	return "sha256-" + digest[len("sha256:"):], nil
}
