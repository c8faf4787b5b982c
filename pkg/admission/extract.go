package admission

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
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
// Each is decoded into a partial type holding only what the checks read: decoding
// status, managedFields and the rest of a workload was a third of a review's CPU.
var kinds = map[schema.GroupVersionKind]kindSpec{
	corev1.SchemeGroupVersion.WithKind("Pod"):                   {specPath: podSpecPath, decode: decodePod},
	corev1.SchemeGroupVersion.WithKind("PodTemplate"):           {specPath: podTemplatePath, decode: decodeTemplated[podTemplateDoc]},
	corev1.SchemeGroupVersion.WithKind("ReplicationController"): {specPath: templateSpecPath, decode: decodeTemplated[rcDoc]},
	appsv1.SchemeGroupVersion.WithKind("Deployment"):            {specPath: templateSpecPath, decode: decodeTemplated[workloadDoc]},
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"):            {specPath: templateSpecPath, decode: decodeTemplated[workloadDoc]},
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"):           {specPath: templateSpecPath, decode: decodeTemplated[workloadDoc]},
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"):             {specPath: templateSpecPath, decode: decodeTemplated[workloadDoc]},
	batchv1.SchemeGroupVersion.WithKind("Job"):                  {specPath: templateSpecPath, decode: decodeTemplated[workloadDoc]},
	batchv1.SchemeGroupVersion.WithKind("CronJob"):              {specPath: cronJobSpecPath, decode: decodeTemplated[cronJobDoc]},
}

// partialMeta is the part of ObjectMeta bulwark reads.
type partialMeta struct {
	Name            string                  `json:"name,omitempty"`
	GenerateName    string                  `json:"generateName,omitempty"`
	Namespace       string                  `json:"namespace,omitempty"`
	UID             types.UID               `json:"uid,omitempty"`
	Annotations     map[string]string       `json:"annotations,omitempty"`
	OwnerReferences []metav1.OwnerReference `json:"ownerReferences,omitempty"`
}

func (m *partialMeta) objectMeta() *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Name: m.Name, GenerateName: m.GenerateName, Namespace: m.Namespace, UID: m.UID,
		Annotations: m.Annotations, OwnerReferences: m.OwnerReferences}
}

// templateDoc is a pod template as workloads embed it.
type templateDoc struct {
	Metadata partialMeta    `json:"metadata"`
	Spec     corev1.PodSpec `json:"spec"`
}

type podDoc struct {
	Metadata partialMeta    `json:"metadata"`
	Spec     corev1.PodSpec `json:"spec"`
}

// workloadDoc fits Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and
// ReplicationController: their pod template is at spec.template.
type workloadDoc struct {
	Metadata partialMeta `json:"metadata"`
	Spec     struct {
		Template *templateDoc `json:"template"`
	} `json:"spec"`
}

// rcDoc is a ReplicationController, the one workload whose template is optional.
type rcDoc struct{ workloadDoc }

type cronJobDoc struct {
	Metadata partialMeta `json:"metadata"`
	Spec     struct {
		JobTemplate struct {
			Spec struct {
				Template *templateDoc `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type podTemplateDoc struct {
	Metadata partialMeta  `json:"metadata"`
	Template *templateDoc `json:"template"`
}

// templated is a workload document: its metadata and its pod template, if any.
type templated interface {
	parts() (*partialMeta, *templateDoc)
}

func (d *workloadDoc) parts() (*partialMeta, *templateDoc) { return &d.Metadata, d.Spec.Template }
func (d *cronJobDoc) parts() (*partialMeta, *templateDoc) {
	return &d.Metadata, d.Spec.JobTemplate.Spec.Template
}
func (d *podTemplateDoc) parts() (*partialMeta, *templateDoc) { return &d.Metadata, d.Template }

// unmarshal decodes case-sensitively, as the API server does: a field spelt in the
// wrong case is not silently taken for the right one.
func unmarshal(raw []byte, v any) error {
	return kjson.UnmarshalCaseSensitivePreserveInts(raw, v)
}

func decodePod(raw []byte) (*object, error) {
	var d podDoc
	if err := unmarshal(raw, &d); err != nil {
		return nil, err
	}
	return &object{meta: d.Metadata.objectMeta(), spec: &d.Spec, pod: true}, nil
}

// decodeTemplated decodes a workload of document type D. A ReplicationController
// without a template runs no pods: its spec is nil; any other workload without one
// is an error.
func decodeTemplated[D any, P interface {
	*D
	templated
}](raw []byte) (*object, error) {
	d := P(new(D))
	if err := unmarshal(raw, d); err != nil {
		return nil, err
	}
	meta, tmpl := d.parts()
	obj := &object{meta: meta.objectMeta()}
	if tmpl == nil {
		if _, optional := any(d).(*rcDoc); optional {
			return obj, nil
		}
		// Fail closed: a workload without a pod template is malformed.
		return nil, fmt.Errorf("no pod template")
	}
	obj.template, obj.spec = tmpl.Metadata.objectMeta(), &tmpl.Spec
	return obj, nil
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

// Gates reports whether bulwark admits objects of kind gvk.
func Gates(gvk schema.GroupVersionKind) bool {
	_, ok := kinds[gvk]
	return ok || gvk == namespaceGVK
}

// GatesKind reports whether bulwark admits some version of kind in group.
func GatesKind(group, kind string) bool {
	for gvk := range kinds {
		if gvk.Group == group && gvk.Kind == kind {
			return true
		}
	}
	return group == "" && kind == "Namespace"
}
