package scanner

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-dev/bulwark/api/v1alpha1"
	"github.com/bulwark-dev/bulwark/pkg/admission"
)

// EventImageVulnerable is the reason of the Warning Event recorded on a running
// workload whose image a newer vulnerability database finds vulnerable.
const EventImageVulnerable = "ImageVulnerable"

// maxNotifiedFindings bounds the findings one Event names.
const maxNotifiedFindings = 5

// notifyRunning returns a worker.Options.Notify that records a Warning Event on
// each workload (the controller of a pod, else the pod) running the image: a new
// database made it non-compliant. Nothing is evicted; the ImageScan holds the
// findings.
func notifyRunning(client kubernetes.Interface, events admission.EventRecorder, log logr.Logger) func(context.Context, *v1alpha1.ImageScan, []v1alpha1.Finding) {
	return func(ctx context.Context, is *v1alpha1.ImageScan, added []v1alpha1.Finding) {
		d, err := name.NewDigest(is.Spec.Image)
		if err != nil {
			return
		}
		var ids []string
		for i, f := range added {
			if i == maxNotifiedFindings {
				ids = append(ids, fmt.Sprintf("and %d more", len(added)-i))
				break
			}
			ids = append(ids, fmt.Sprintf("%s (%s) in %s %s", f.ID, f.Severity, f.Package, f.Installed))
		}
		seen := map[string]bool{}
		opts := metav1.ListOptions{Limit: 500}
		for {
			pods, err := client.CoreV1().Pods("").List(ctx, opts)
			if err != nil {
				log.Error(err, "List pods to notify about a vulnerable image", "image", is.Spec.Image)
				return
			}
			for i := range pods.Items {
				pod := &pods.Items[i]
				if !runs(pod, d.DigestStr()) {
					continue
				}
				ref := corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
				if owner := metav1.GetControllerOf(pod); owner != nil {
					ref = corev1.ObjectReference{APIVersion: owner.APIVersion, Kind: owner.Kind, Namespace: pod.Namespace, Name: owner.Name, UID: owner.UID}
				}
				key := ref.Kind + "/" + ref.Namespace + "/" + ref.Name
				if seen[key] {
					continue
				}
				seen[key] = true
				events.Record(admission.Event{Regarding: ref, Type: corev1.EventTypeWarning, Reason: EventImageVulnerable, Action: "Rescan",
					Note: admission.EventNote(fmt.Sprintf("image %s now has %s, found by the vulnerability database built %s; running pods are not evicted (ImageScan %s)",
						is.Spec.Image, strings.Join(ids, ", "), is.Status.DBBuilt.UTC().Format("2006-01-02T15:04:05Z"), is.Name))})
			}
			if pods.Continue == "" {
				return
			}
			opts.Continue = pods.Continue
		}
	}
}

// runs reports whether pod has a container (init, regular, ephemeral) whose image
// is pinned to digest.
func runs(pod *corev1.Pod, digest string) bool {
	var images []string
	for _, c := range pod.Spec.InitContainers {
		images = append(images, c.Image)
	}
	for _, c := range pod.Spec.Containers {
		images = append(images, c.Image)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		images = append(images, c.Image)
	}
	for _, img := range images {
		if strings.HasSuffix(img, "@"+digest) {
			return true
		}
	}
	return false
}
