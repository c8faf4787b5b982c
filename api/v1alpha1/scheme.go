package v1alpha1

import "k8s.io/apimachinery/pkg/runtime"

// NewScheme returns a scheme that knows bulwark's API types only, for clients
// and caches of ImageScans.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		panic(err) // the types register without error; a failure is a programming error
	}
	return s
}
