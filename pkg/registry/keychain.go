package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"k8s.io/client-go/kubernetes"
)

// Keychains reads registry credentials for pods: the pod's imagePullSecrets and
// those of its service account, read only in the pod's namespace.
//
// Like the kubelet, it ignores a pull secret or service account that does not
// exist: the pod may still pull public images, and the registry's refusal is the
// clearer error. Any other API error (forbidden, unavailable) fails the keychain,
// and so does a pull secret whose docker config does not parse.
type Keychains struct {
	client kubernetes.Interface
}

// NewKeychains returns Keychains that read secrets and service accounts through
// client. It needs get on secrets and serviceaccounts in the pods' namespaces.
func NewKeychains(client kubernetes.Interface) *Keychains {
	return &Keychains{client: client}
}

// ForPod returns the keychain for a pod in namespace running as serviceAccount
// ("default" when empty, as the API server defaults it) with the named
// imagePullSecrets. The keychain holds the credentials read now; it makes no API
// calls later. namespace must not be empty: kauth would read "default" instead.
func (k *Keychains) ForPod(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error) {
	if namespace == "" {
		return nil, errors.New("read pull secrets: empty namespace")
	}
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	kc, err := kauth.New(ctx, k.client, kauth.Options{
		Namespace:          namespace,
		ServiceAccountName: serviceAccount,
		ImagePullSecrets:   pullSecrets,
	})
	if err != nil {
		return nil, fmt.Errorf("read pull secrets in namespace %s: %w", namespace, err)
	}
	return kc, nil
}
