package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// Kinds of object the reviews command can replay.
const (
	kindPod        = "pod"
	kindDeployment = "deployment"
)

// pinnedImage returns a distinct image reference pinned by a sha256 digest.
func pinnedImage(repo, tag string) string {
	sum := sha256.Sum256([]byte(repo + ":" + tag))
	return "registry.example/team-a/" + repo + ":" + tag + "@sha256:" + hex.EncodeToString(sum[:])
}

// userPod is a pod as a user writes it: two containers, both images pinned by digest,
// no securityContext (bulwark's mutating webhook adds it).
func userPod(name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web", "tier": "frontend"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{
				Name:  "web",
				Image: pinnedImage("web", "1.4.2"),
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
			},
			{
				Name:  "log-shipper",
				Image: pinnedImage("log-shipper", "0.9.1"),
				Args:  []string{"--input=/var/log/app", "--output=stdout"},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
				},
			},
		}},
	}
}

// defaultContainers fills in what the API server's defaulting adds to containers.
func defaultContainers(cs []corev1.Container) {
	for i := range cs {
		c := &cs[i]
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
		c.ImagePullPolicy = corev1.PullIfNotPresent
		if p := c.ReadinessProbe; p != nil {
			p.HTTPGet.Scheme = corev1.URISchemeHTTP
			p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold = 1, 10, 1, 3
		}
	}
}

// defaultPodSpec fills in what the API server's defaulting adds to a pod spec.
func defaultPodSpec(s *corev1.PodSpec) {
	defaultContainers(s.Containers)
	s.RestartPolicy = corev1.RestartPolicyAlways
	s.TerminationGracePeriodSeconds = ptr.To[int64](30)
	s.DNSPolicy = corev1.DNSClusterFirst
	s.SecurityContext = &corev1.PodSecurityContext{}
	s.SchedulerName = corev1.DefaultSchedulerName
}

// admittedPod is userPod as kube-apiserver sends it to a webhook on CREATE: defaulted,
// with the service account token volume and the default tolerations the built-in
// admission plugins add, and managedFields. For the validate stage it also carries the
// hardening bulwark's mutating webhook added, plus the uid and creation time the
// registry sets before validating admission.
func admittedPod(namespace, name string, validate bool) *corev1.Pod {
	pod := userPod(name)
	pod.Namespace = namespace
	pod.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		Time: &metav1.Time{Time: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}, FieldsType: "FieldsV1",
		FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:tier":{}}},"f:spec":{"f:containers":{` +
			`"k:{\"name\":\"log-shipper\"}":{".":{},"f:args":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{".":{},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}},` +
			`"k:{\"name\":\"web\"}":{".":{},"f:env":{".":{},"k:{\"name\":\"LOG_LEVEL\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}}},` +
			`"f:readinessProbe":{".":{},"f:failureThreshold":{},"f:httpGet":{".":{},"f:path":{},"f:port":{},"f:scheme":{}},"f:periodSeconds":{},"f:successThreshold":{},"f:timeoutSeconds":{}},"f:resources":{".":{},"f:limits":{".":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},` +
			`"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}`)},
	}}
	s := &pod.Spec
	defaultPodSpec(s)
	s.ServiceAccountName, s.DeprecatedServiceAccount = "default", "default"
	s.Priority = ptr.To[int32](0)
	s.EnableServiceLinks = ptr.To(true)
	s.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	s.Tolerations = []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
	}
	const tokenVolume = "kube-api-access-7xk2p"
	s.Volumes = []corev1.Volume{{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3607), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}}
	for i := range s.Containers {
		s.Containers[i].VolumeMounts = append(s.Containers[i].VolumeMounts, corev1.VolumeMount{
			Name: tokenVolume, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
		})
	}
	if validate {
		pod.UID = "6f0b1d2e-3c4a-4b5c-9d6e-7f8091a2b3c4"
		pod.CreationTimestamp = metav1.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
		harden(pod)
	}
	return pod
}

// harden gives every container of pod the securityContext bulwark's mutating
// webhook adds under the default policy, so that webhook has nothing to patch.
func harden(pod *corev1.Pod) *corev1.Pod {
	p := policy.Defaults()
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].SecurityContext = p.Checks.Hardening.SecurityContext()
	}
	return pod
}

// admittedDeployment is a Deployment of userPod's spec as kube-apiserver sends it on
// CREATE: defaulted, template not hardened (bulwark only mutates Pods).
func admittedDeployment(namespace, name string) *appsv1.Deployment {
	pod := userPod(name)
	defaultPodSpec(&pod.Spec)
	quarter := intstr.FromString("25%")
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": "web"}, Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: pod.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: pod.Labels}, Spec: pod.Spec},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &quarter, MaxSurge: &quarter}},
			RevisionHistoryLimit:    ptr.To[int32](10),
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
	}
}

// uidPlaceholder stands for the request uid in a review template; it is exactly as
// long as a real uid, so the body size does not change.
const uidPlaceholder = "UUUUUUUU-UUUU-UUUU-UUUU-UUUUUUUUUUUU"

// reviewTemplate is an AdmissionReview body split around its request uid, so every
// request carries a distinct uid without re-encoding the object.
type reviewTemplate struct {
	prefix, suffix []byte
	// allowed and patched are what a correct response says.
	allowed, patched bool
}

// requestUID returns the uid of request n, shaped like the API server's (a UUID).
func requestUID(n uint64) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", n)
}

// body returns the review with the request uid set.
func (t *reviewTemplate) body(uid string) []byte {
	b := make([]byte, 0, len(t.prefix)+len(uid)+len(t.suffix))
	b = append(b, t.prefix...)
	b = append(b, uid...)
	return append(b, t.suffix...)
}

// newReviewTemplate builds the CREATE review kube-apiserver sends for kind to a
// webhook of stage ("mutate" or "validate"), from user dev in namespace team-a.
func newReviewTemplate(kind string, mutate bool) (*reviewTemplate, error) {
	const namespace, name = "team-a", "web-6d4cf56db6-x7k2p"
	var (
		obj      runtime.Object
		gvk      metav1.GroupVersionKind
		gvr      metav1.GroupVersionResource
		tmpl     = &reviewTemplate{allowed: true}
		objName  = name
		userInfo = authenticationv1.UserInfo{Username: "dev", UID: "dev", Groups: []string{"developers", "system:authenticated"}}
	)
	switch kind {
	case kindPod:
		obj = admittedPod(namespace, name, !mutate)
		gvk = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
		gvr = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
		// The mutating stage hardens the pod; the validating stage then admits it.
		tmpl.patched = mutate
	case kindDeployment:
		obj = admittedDeployment(namespace, "web")
		objName = "web"
		gvk = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
		gvr = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	default:
		return nil, fmt.Errorf("unknown kind %q (want %s or %s)", kind, kindPod, kindDeployment)
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	opts, err := json.Marshal(&metav1.CreateOptions{
		TypeMeta:     metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "CreateOptions"},
		FieldManager: "kubectl-client-side-apply",
	})
	if err != nil {
		return nil, err
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:             uidPlaceholder,
			Kind:            gvk,
			Resource:        gvr,
			RequestKind:     &gvk,
			RequestResource: &gvr,
			Name:            objName,
			Namespace:       namespace,
			Operation:       admissionv1.Create,
			UserInfo:        userInfo,
			Object:          runtime.RawExtension{Raw: raw},
			DryRun:          ptr.To(false),
			Options:         runtime.RawExtension{Raw: opts},
		},
	}
	body, err := json.Marshal(&review)
	if err != nil {
		return nil, err
	}
	before, after, ok := bytes.Cut(body, []byte(uidPlaceholder))
	if !ok {
		return nil, fmt.Errorf("uid placeholder missing from the encoded review")
	}
	tmpl.prefix, tmpl.suffix = before, after
	return tmpl, nil
}
