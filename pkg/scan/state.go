package scan

import "time"

// Phase is where an image's scan stands, as admission sees it.
type Phase string

const (
	// PhaseMissing: no scan exists yet.
	PhaseMissing Phase = "Missing"
	// PhasePending: a scan is queued or running.
	PhasePending Phase = "Pending"
	// PhaseComplete: Report holds the findings.
	PhaseComplete Phase = "Complete"
	// PhaseFailed: the scan failed for Reason (e.g. ExceedsScanLimits).
	PhaseFailed Phase = "Failed"
)

// State is what admission knows about one image's scan.
type State struct {
	Phase Phase
	// Report is set when Phase is Complete; Findings holds those the scanner
	// recorded (at or above the lowest threshold the policy uses).
	Report *Report
	// Reason (CamelCase) and Message explain a failure.
	Reason, Message string
	// RetryAfter estimates when a pending scan completes.
	RetryAfter time.Duration
	// Outdated is set when a newer vulnerability database than the report's
	// has been in use for this long, so a rescan is due.
	Outdated time.Duration
}
