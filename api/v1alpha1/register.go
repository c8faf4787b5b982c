package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of bulwark's custom resources.
const GroupName = "bulwark.dev"

// Kinds and the resource name of this group version.
const (
	ImageScanKind     = "ImageScan"
	ImageScanListKind = "ImageScanList"
	// ImageScanResource is the plural resource name, as in RBAC rules and REST paths.
	ImageScanResource = "imagescans"
)

// SchemeGroupVersion is bulwark.dev/v1alpha1.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

var (
	// SchemeBuilder registers this group version's types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds ImageScan and ImageScanList to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the GroupResource of resource in bulwark.dev, as RBAC and API
// errors name it.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &ImageScan{}, &ImageScanList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
