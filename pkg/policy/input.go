package policy

import (
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// Stage says which admission pass is asking.
type Stage string

const (
	// StageMutate computes patches; it never denies.
	StageMutate Stage = "mutate"
	// StageValidate decides on the object as the mutating pass left it.
	StageValidate Stage = "validate"
)

// Operation is the admission operation.
type Operation string

const (
	OperationCreate Operation = "CREATE"
	OperationUpdate Operation = "UPDATE"
)

// Input is everything a check may look at. The admission layer builds it from the
// request; nothing here is read from the network or the clock.
type Input struct {
	Stage     Stage
	Operation Operation
	// Pod is true when the object is a Pod; false for a workload template. Only Pods
	// are mutated, so that GitOps tools see no drift on the workloads they own.
	Pod bool
	// Spec is the pod spec under admission.
	Spec *corev1.PodSpec
	// OldSpec is the pod spec before an UPDATE, nil on CREATE.
	OldSpec *corev1.PodSpec
	// SpecPath is where Spec sits in the object, e.g. spec.template.spec.
	SpecPath *field.Path
	// Exemptions are the honoured exemptions that apply to the object.
	Exemptions []*Exemption
	// ExemptionsChanged is true when an UPDATE changes the object's exemption
	// annotations (or its grant).
	ExemptionsChanged bool
	// Signatures holds the verification of each image SignatureTargets names,
	// keyed by image reference. An image without a result is denied.
	Signatures map[string]verify.Result
	// Bases holds what each image BaseImageTargets names declares about its
	// base, keyed by image reference. An image without an entry is denied.
	Bases map[string]verify.Base
	// Scans holds the scan state of each image VulnerabilityTargets names, keyed
	// by image reference. An image without an entry counts as not scanned yet.
	Scans map[string]scan.State
	// Namespace is the object's namespace (per-namespace thresholds, ignore
	// rules); Now is the time of the request (ignore rules, database age).
	Namespace string
	Now       time.Time
	// Resolved maps tags the mutating pass resolved (ResolveTargets) to
	// repo:tag@sha256:… references; each becomes a patch.
	Resolved map[string]string
}

// NeedsJudgement reports whether the object must be judged at all: a workload
// update that leaves its pod template and its exemptions alone (scaling, labels)
// creates no new pods and is not judged again.
func NeedsJudgement(in *Input) bool {
	return in.OldSpec == nil || in.Pod || in.ExemptionsChanged || !equality.Semantic.DeepEqual(in.Spec, in.OldSpec)
}

// Container lists of a PodSpec, by JSON name.
const (
	listInit      = "initContainers"
	listMain      = "containers"
	listEphemeral = "ephemeralContainers"
)

// container is a read-only view of a container, an init container or an ephemeral
// container: the fields the checks inspect, and where they are.
type container struct {
	list            string
	index           int
	name            string
	image           string
	securityContext *corev1.SecurityContext
	volumeMounts    []corev1.VolumeMount
	// path is the field path (spec.containers[0]); patchPath the JSON pointer
	// relative to the object (/spec/containers/0).
	path      *field.Path
	patchPath string
}

// eachContainer calls fn for every container of spec, init containers first, then
// containers, then ephemeral containers.
func eachContainer(spec *corev1.PodSpec, specPath *field.Path, fn func(c container)) {
	pointer := "/" + jsonPointer(specPath)
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		fn(container{listInit, i, c.Name, c.Image, c.SecurityContext, c.VolumeMounts,
			specPath.Child(listInit).Index(i), pointer + "/" + listInit + "/" + strconv.Itoa(i)})
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		fn(container{listMain, i, c.Name, c.Image, c.SecurityContext, c.VolumeMounts,
			specPath.Child(listMain).Index(i), pointer + "/" + listMain + "/" + strconv.Itoa(i)})
	}
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i].EphemeralContainerCommon
		fn(container{listEphemeral, i, c.Name, c.Image, c.SecurityContext, c.VolumeMounts,
			specPath.Child(listEphemeral).Index(i), pointer + "/" + listEphemeral + "/" + strconv.Itoa(i)})
	}
}

// EachImage calls fn for every image reference in spec with its field path: the
// image of every init, regular and ephemeral container and the reference of every
// image volume. A reflection test keeps this list complete.
func EachImage(spec *corev1.PodSpec, specPath *field.Path, fn func(image string, path *field.Path)) {
	eachImage(spec, specPath, func(_, image string, path *field.Path, _ string) { fn(image, path) })
}

// eachImage is EachImage that also passes a key identifying the image's slot across
// an UPDATE ("containers/web", "volume/models") and the JSON pointer of the field.
func eachImage(spec *corev1.PodSpec, specPath *field.Path, fn func(key, image string, path *field.Path, pointer string)) {
	eachContainer(spec, specPath, func(c container) {
		fn(c.list+"/"+c.name, c.image, c.path.Child("image"), c.patchPath+"/image")
	})
	pointer := "/" + jsonPointer(specPath) + "/volumes/"
	for i := range spec.Volumes {
		if img := spec.Volumes[i].Image; img != nil {
			fn("volume/"+spec.Volumes[i].Name, img.Reference, specPath.Child("volumes").Index(i).Child("image", "reference"),
				pointer+strconv.Itoa(i)+"/image/reference")
		}
	}
}

// changes tells which parts of a pod spec an UPDATE adds or changes. Running
// containers keep what they were admitted with, so on a Pod UPDATE only new
// containers and changed images are judged. On CREATE everything is new.
type changes struct {
	oldImages     map[string]string // "list/name" or "volume/name" → image
	oldContainers map[string]bool
}

func newChanges(old *corev1.PodSpec) *changes {
	if old == nil {
		return nil
	}
	ch := &changes{oldImages: map[string]string{}, oldContainers: map[string]bool{}}
	eachContainer(old, field.NewPath("spec"), func(c container) {
		ch.oldContainers[c.list+"/"+c.name] = true
	})
	eachImage(old, field.NewPath("spec"), func(key, image string, _ *field.Path, _ string) {
		ch.oldImages[key] = image
	})
	return ch
}

func (ch *changes) containerIsNew(c container) bool {
	return ch == nil || !ch.oldContainers[c.list+"/"+c.name]
}

func (ch *changes) imageIsNew(key, image string) bool {
	if ch == nil {
		return true
	}
	old, ok := ch.oldImages[key]
	return !ok || old != image
}

// jsonPointer turns a field path without indices (spec.template.spec) into a JSON
// pointer body (spec/template/spec).
func jsonPointer(p *field.Path) string {
	return strings.ReplaceAll(p.String(), ".", "/")
}
