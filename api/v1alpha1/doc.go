// Package v1alpha1 holds bulwark's API types in the group bulwark.dev: ImageScan, the
// cluster-wide record of one image digest's vulnerability scan, and the scheme
// registration that clients need to read and write it.
//
// The package owns the wire format and its validation markers only: no client, no
// scanning, no policy. The CRD under deploy/base/crds and zz_generated.deepcopy.go are
// generated from these types by `make generate` (hack/gen-crds.sh); edit the types, then
// regenerate.
//
// +kubebuilder:object:generate=true
// +groupName=bulwark.dev
package v1alpha1
