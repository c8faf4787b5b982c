package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// BulwarkCertsRBACFile holds the rights of self-managed certificates, relative to
// the repository root: a Role in BulwarkNamespace (the Secret and the Lease) and a
// ClusterRole (the webhook configurations named bulwark).
const BulwarkCertsRBACFile = "deploy/base/rbac-certs.yaml"

// BulwarkNamespace is bulwark's own namespace, where its Role lives.
const BulwarkNamespace = "bulwark-system"

// applyBulwarkCertsRBAC binds the Bulwark user to the Role and ClusterRole of
// BulwarkCertsRBACFile, so that self-managed certificates run in the tests with
// the rights a deployment gives them. It creates BulwarkNamespace.
func (c *Cluster) applyBulwarkCertsRBAC(ctx context.Context, cs kubernetes.Interface) error {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: BulwarkNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(), BulwarkCertsRBACFile))
	if err != nil {
		return err
	}
	user := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: Bulwark}}
	for _, doc := range splitYAML(data) {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", BulwarkCertsRBACFile, err)
		}
		switch role := obj.(type) {
		case *rbacv1.ClusterRole:
			if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
			binding := &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-dev-user"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
				Subjects:   user,
			}
			if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
		case *rbacv1.Role:
			if _, err := cs.RbacV1().Roles(role.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
			binding := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-dev-user", Namespace: role.Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
				Subjects:   user,
			}
			if _, err := cs.RbacV1().RoleBindings(role.Namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
		}
	}
	return nil
}
