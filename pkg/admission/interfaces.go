package admission

import (
	"context"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

type authUser = authenticationv1.UserInfo

// Authorizer tells whether a user holds the right to grant exemptions: verb
// "exempt" on resource "exemptions" in API group "bulwark.dev", resourceName = check.
type Authorizer interface {
	CanExempt(ctx context.Context, user authenticationv1.UserInfo, namespace string, check policy.CheckID) (bool, error)
}

// Lookup reads the cluster state an admission decision depends on.
type Lookup interface {
	// NamespaceAnnotations returns the annotations of the namespace name.
	NamespaceAnnotations(ctx context.Context, name string) (map[string]string, error)
	// ControllerOf returns the controller owner reference of the ReplicaSet or Job
	// namespace/name, or nil if it has none.
	ControllerOf(ctx context.Context, namespace, kind, name string) (*metav1.OwnerReference, error)
}

// Event is a Kubernetes Event bulwark records about an admission.
type Event struct {
	Regarding corev1.ObjectReference
	Type      string // corev1.EventTypeNormal or corev1.EventTypeWarning
	Reason    string // a fixed CamelCase enum: a policy.Reason or one of the Event* reasons
	Action    string
	Note      string // at most MaxEventNote bytes, without control characters
}

// EventRecorder takes Events without blocking; it may drop them under load.
type EventRecorder interface {
	Record(Event)
}

// Event reasons besides the verdict reasons of pkg/policy.
const (
	EventPolicyExempted    = "PolicyExempted"
	EventExemptionRejected = "ExemptionRejected"
	EventExemptionExpiring = "ExemptionExpiring"

	// MaxEventNote bounds an Event's note in bytes.
	MaxEventNote = 1024
)
