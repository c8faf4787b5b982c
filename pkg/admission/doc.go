// Package admission translates between Kubernetes AdmissionReviews and pkg/policy:
// it decodes the object under admission, finds its pod spec and field path,
// evaluates the policy and renders the decision as an admission response (denial
// message, warnings, JSONPatch, audit annotations) and metrics.
//
// It makes no decisions of its own: a rule about what is allowed belongs in
// pkg/policy.
package admission
