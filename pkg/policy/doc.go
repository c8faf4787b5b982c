// Package policy owns bulwark's decisions: given the pod spec of an object under
// admission and the operator's Policy, it returns verdicts (deny, warn, audit) and the
// JSONPatch operations that harden a pod.
//
// Everything here is pure: no context, no network, no clock and no logging. Facts that
// need I/O (signatures, scan reports, the time) arrive as fields of Input. Each check
// lives in check_<name>.go and opens with what it inspects.
package policy
