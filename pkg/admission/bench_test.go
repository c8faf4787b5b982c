package admission_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bulwark-dev/bulwark/pkg/admission"
	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// benchPod is a pod with two containers pinned by digest as kube-apiserver sends it
// to a mutating webhook on CREATE: defaulted, with managedFields, the service account
// token volume and the default tolerations. cmd/loadtest replays the same pod.
const benchPod = `{"kind":"Pod","apiVersion":"v1",
"metadata":{"name":"web-6d4cf56db6-x7k2p","namespace":"team-a","labels":{"app":"web","tier":"frontend"},
 "managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":"2026-07-01T12:00:00Z","fieldsType":"FieldsV1",
  "fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:tier":{}}},"f:spec":{"f:containers":{
   "k:{\"name\":\"log-shipper\"}":{".":{},"f:args":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{".":{},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}},
   "k:{\"name\":\"web\"}":{".":{},"f:env":{".":{},"k:{\"name\":\"LOG_LEVEL\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:imagePullPolicy":{},"f:name":{},
    "f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}}},
    "f:readinessProbe":{".":{},"f:failureThreshold":{},"f:httpGet":{".":{},"f:path":{},"f:port":{},"f:scheme":{}},"f:periodSeconds":{},"f:successThreshold":{},"f:timeoutSeconds":{}},
    "f:resources":{".":{},"f:limits":{".":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},
   "f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}]},
"spec":{
 "volumes":[{"name":"kube-api-access-7xk2p","projected":{"sources":[
  {"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
  {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
  {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}],"defaultMode":420}}],
 "containers":[
  {"name":"web","image":"registry.example/team-a/web:1.4.2@sha256:d1864540c44317880193e9178dd89a68cc2e559ed500d599de0471b86fb22412",
   "ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],"env":[{"name":"LOG_LEVEL","value":"info"}],
   "resources":{"limits":{"memory":"256Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},
   "volumeMounts":[{"name":"kube-api-access-7xk2p","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],
   "readinessProbe":{"httpGet":{"path":"/healthz","port":"http","scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},
   "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"},
  {"name":"log-shipper","image":"registry.example/team-a/log-shipper:0.9.1@sha256:2e9a5bd2c086c6bc1abb0f061a6e1a42542ba1ccb1feaf3cf012408d140af933",
   "args":["--input=/var/log/app","--output=stdout"],"resources":{"requests":{"cpu":"10m","memory":"32Mi"}},
   "volumeMounts":[{"name":"kube-api-access-7xk2p","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],
   "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],
 "restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","serviceAccount":"default",
 "securityContext":{},"schedulerName":"default-scheduler",
 "tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},
  {"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],
 "priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},
"status":{}}`

// benchReview returns the AdmissionReview kube-apiserver sends for benchPod to the
// webhook of stage. The validating stage sees the pod as the mutating stage left it
// (hardened), with the uid and creation time the registry sets before validation.
func benchReview(b *testing.B, stage policy.Stage) []byte {
	b.Helper()
	raw := new(bytes.Buffer)
	if err := json.Compact(raw, []byte(benchPod)); err != nil {
		b.Fatal(err)
	}
	object := raw.Bytes()
	if stage == policy.StageValidate {
		var pod corev1.Pod
		if err := json.Unmarshal(object, &pod); err != nil {
			b.Fatal(err)
		}
		pod.UID = "6f0b1d2e-3c4a-4b5c-9d6e-7f8091a2b3c4"
		pod.CreationTimestamp = pod.ManagedFields[0].Time.Rfc3339Copy()
		defaults := policy.Defaults()
		for i := range pod.Spec.Containers {
			pod.Spec.Containers[i].SecurityContext = defaults.Checks.Hardening.SecurityContext()
		}
		var err error
		if object, err = json.Marshal(&pod); err != nil {
			b.Fatal(err)
		}
	}
	gvk := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	gvr := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:  "00000000-0000-4000-8000-000000000001",
			Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
			Name: "web-6d4cf56db6-x7k2p", Namespace: "team-a", Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "dev", UID: "dev", Groups: []string{"developers", "system:authenticated"}},
			Object:   runtime.RawExtension{Raw: object},
			DryRun:   ptr.To(false),
			Options:  runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply"}`)},
		},
	}
	body, err := json.Marshal(&review)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

var setLogger sync.Once

// BenchmarkHandle measures one admission request through the webhook's HTTP handler
// (controller-runtime decoding and encoding included, TLS and the network not), for
// the pinned two-container pod each stage admits.
func BenchmarkHandle(b *testing.B) {
	// The webhook binary's logger: JSON at level 0, which logs nothing for an admitted
	// pod. Without one, controller-runtime's deferred logger keeps every request's
	// logger until it gives up after 30 s.
	setLogger.Do(func() { logf.SetLogger(logr.FromSlogHandler(slog.NewJSONHandler(io.Discard, nil))) })
	p := policy.Defaults()
	for _, stage := range []policy.Stage{policy.StageValidate, policy.StageMutate} {
		b.Run(string(stage), func(b *testing.B) {
			h := admission.NewHandler(admission.Options{Stage: stage, Policy: func() *policy.Policy { return &p }, Metrics: admission.NewMetrics(prometheus.NewRegistry())})
			wh := h.Webhook()
			body := benchReview(b, stage)
			serve := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "/"+string(stage)+"?timeout=10s", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				wh.ServeHTTP(rec, req)
				return rec
			}
			// The benchmark measures the intended path only if the pod is admitted,
			// and patched by the mutating stage only.
			rec := serve()
			var got admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Response == nil {
				b.Fatalf("response %d %q: %v", rec.Code, rec.Body, err)
			}
			if r := got.Response; !r.Allowed || (len(r.Patch) > 0) != (stage == policy.StageMutate) {
				b.Fatalf("allowed=%t patch=%s warnings=%s", r.Allowed, r.Patch, strings.Join(r.Warnings, "; "))
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}
