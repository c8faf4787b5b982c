package admission

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
)

// object is an object under admission as the checks see it.
type object struct {
	kind string
	meta *metav1.ObjectMeta
	// template is the pod template's metadata of a workload, nil for a Pod.
	template *metav1.ObjectMeta
	// spec is nil for a workload without a template (a ReplicationController may
	// omit it); such an object runs no pods and has nothing to judge.
	spec     *corev1.PodSpec
	specPath *field.Path
	pod      bool
}

// kindSpec knows how to decode one kind and where its pod spec lives.
type kindSpec struct {
	decode   func(raw []byte) (*object, error)
	specPath *field.Path
}

var (
	podSpecPath      = field.NewPath("spec")
	templateSpecPath = field.NewPath("spec", "template", "spec")
	cronJobSpecPath  = field.NewPath("spec", "jobTemplate", "spec", "template", "spec")
	podTemplatePath  = field.NewPath("template", "spec")
)

// templateMetaPointer is the JSON pointer of each kind's pod template metadata.
var templateMetaPointer = map[string]string{
	"PodTemplate":           "/template/metadata",
	"ReplicationController": "/spec/template/metadata",
	"Deployment":            "/spec/template/metadata",
	"ReplicaSet":            "/spec/template/metadata",
	"StatefulSet":           "/spec/template/metadata",
	"DaemonSet":             "/spec/template/metadata",
	"Job":                   "/spec/template/metadata",
	"CronJob":               "/spec/jobTemplate/spec/template/metadata",
}

// Kinds lists the kinds bulwark admits, at the versions its webhook rules name
// (matchPolicy Equivalent makes the API server convert other versions to these).
var kinds = map[schema.GroupVersionKind]kindSpec{
	corev1.SchemeGroupVersion.WithKind("Pod"): {specPath: podSpecPath, decode: decodeAs(func(o *corev1.Pod) (*metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Spec
	})},
	corev1.SchemeGroupVersion.WithKind("PodTemplate"): {specPath: podTemplatePath, decode: decodeWithTemplate(func(o *corev1.PodTemplate) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Template.ObjectMeta, &o.Template.Spec
	})},
	corev1.SchemeGroupVersion.WithKind("ReplicationController"): {specPath: templateSpecPath, decode: decodeWithTemplate(func(o *corev1.ReplicationController) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		if o.Spec.Template == nil {
			return &o.ObjectMeta, nil, nil
		}
		return &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	})},
	appsv1.SchemeGroupVersion.WithKind("Deployment"): {specPath: templateSpecPath, decode: decodeWithTemplate(func(o *appsv1.Deployment) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	})},
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"): {specPath: templateSpecPath, decode: decodeWithTemplate(func(o *appsv1.ReplicaSet) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	})},
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"): {specPath: templateSpecPath, decode: decodeWithTemplate(func(o *appsv1.StatefulSet) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	})},
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"): {specPath: templateSpecPath, decode: decodeWithTemplate(func(o *appsv1.DaemonSet) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	})},
	batchv1.SchemeGroupVersion.WithKind("Job"): {specPath: templateSpecPath, decode: decodeWithTemplate(func(o *batchv1.Job) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	})},
	batchv1.SchemeGroupVersion.WithKind("CronJob"): {specPath: cronJobSpecPath, decode: decodeWithTemplate(func(o *batchv1.CronJob) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		return &o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
	})},
}

// decodeAs returns a decoder for kind T whose pod spec parts() picks out.
func decodeAs[T any](parts func(*T) (*metav1.ObjectMeta, *corev1.PodSpec)) func([]byte) (*object, error) {
	return decodeWithTemplate(func(o *T) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec) {
		meta, spec := parts(o)
		return meta, nil, spec
	})
}

// decodeWithTemplate is decodeAs for kinds with a pod template.
func decodeWithTemplate[T any](parts func(*T) (*metav1.ObjectMeta, *metav1.ObjectMeta, *corev1.PodSpec)) func([]byte) (*object, error) {
	return func(raw []byte) (*object, error) {
		obj := new(T)
		// Case-sensitive, as the API server decodes: a field spelt in the wrong case
		// is not silently taken for the right one.
		if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, obj); err != nil {
			return nil, err
		}
		meta, template, spec := parts(obj)
		_, isPod := any(obj).(*corev1.Pod)
		return &object{meta: meta, template: template, spec: spec, pod: isPod}, nil
	}
}

// decodeObject decodes raw as kind gvk.
func decodeObject(gvk schema.GroupVersionKind, raw []byte) (*object, error) {
	ks, ok := kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("bulwark does not admit %s (%s); remove it from the webhook's rules", gvk.Kind, gvk.GroupVersion())
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("request has no %s object", gvk.Kind)
	}
	obj, err := ks.decode(raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", gvk.Kind, err)
	}
	obj.specPath = ks.specPath
	obj.kind = gvk.Kind
	return obj, nil
}
