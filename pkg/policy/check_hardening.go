package policy

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// TmpVolumeName names the emptyDir volume bulwark mounts at /tmp when
// HardeningConfig.TmpEmptyDir is on.
const TmpVolumeName = "bulwark-tmp"

// checkHardening: containers run without capabilities, with a read-only root
// filesystem, without privilege escalation and under the runtime's default seccomp
// profile.
//
// Inspects: <spec>.{initContainers,containers,ephemeralContainers}[*].securityContext
// .capabilities.drop/.add, .readOnlyRootFilesystem, .allowPrivilegeEscalation,
// .privileged, .seccompProfile; <spec>.securityContext.seccompProfile; <spec>.os.name;
// <spec>.volumes and .volumeMounts (for /tmp).
//
// Mutate stage (Pods only, not in audit mode): adds each enabled control a container
// leaves unset. Validate stage: reports values the user set that contradict a control,
// on Pods and workload templates alike, and on Pods any control still unset.
// On a Pod UPDATE only containers the update adds are considered.
func checkHardening(p *Policy, in *Input, ch *changes) ([]Verdict, []Patch) {
	cfg := p.Checks.Hardening
	// The controls are Linux security settings; the API server rejects them on pods
	// that declare spec.os.name: windows.
	if in.Spec.OS != nil && in.Spec.OS.Name == corev1.Windows {
		return nil, nil
	}
	h := hardener{cfg: &cfg, in: in, act: actionFor(cfg.Mode)}
	eachContainer(in.Spec, in.SpecPath, func(c container) {
		if in.Pod && !ch.containerIsNew(c) {
			return
		}
		h.container(c)
	})
	if h.needTmpVolume && !hasVolume(in.Spec, TmpVolumeName) {
		vol := corev1.Volume{Name: TmpVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
		h.patches = append(h.patches, appendPatch("/spec/volumes", in.Spec.Volumes == nil, vol))
	}
	return h.verdicts, h.patches
}

// SecurityContext returns the securityContext the mutating pass gives a container
// that has none, under c. Benchmarks and tests use it to build already-hardened pods.
func (c *HardeningConfig) SecurityContext() *corev1.SecurityContext {
	sc := &corev1.SecurityContext{}
	if c.DropAllCapabilities {
		sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	}
	if c.ReadOnlyRootFilesystem {
		sc.ReadOnlyRootFilesystem = ptr.To(true)
	}
	if c.DisallowPrivilegeEscalation {
		sc.AllowPrivilegeEscalation = ptr.To(false)
	}
	if c.SeccompRuntimeDefault {
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	return sc
}

type hardener struct {
	cfg *HardeningConfig
	in  *Input
	act Action

	verdicts          []Verdict
	patches           []Patch
	needTmpVolume     bool
	podSeccompFlagged bool
}

// container judges one container: what is missing is patched (mutate) or reported
// (validate, Pods); what contradicts a control is reported (validate).
func (h *hardener) container(c container) {
	sc := c.securityContext
	scPath := c.path.Child("securityContext")
	var missing corev1.SecurityContext // the unset controls, as they would be set
	var missingAny bool

	if h.cfg.DropAllCapabilities && !dropsAll(sc) {
		missing.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
		missingAny = true
	}
	if h.cfg.ReadOnlyRootFilesystem {
		switch {
		case sc == nil || sc.ReadOnlyRootFilesystem == nil:
			missing.ReadOnlyRootFilesystem = ptr.To(true)
			missingAny = true
		case !*sc.ReadOnlyRootFilesystem:
			h.conflict(scPath.Child("readOnlyRootFilesystem"), "set to false; remove it so bulwark sets true, and mount an emptyDir where the app writes")
		}
	}
	if h.cfg.DisallowPrivilegeEscalation {
		switch {
		case sc != nil && sc.AllowPrivilegeEscalation != nil:
			if *sc.AllowPrivilegeEscalation {
				h.conflict(scPath.Child("allowPrivilegeEscalation"), "set to true; remove it so bulwark sets false")
			}
		case sc != nil && sc.Privileged != nil && *sc.Privileged:
			// The API server refuses allowPrivilegeEscalation: false next to
			// privileged: true, and a privileged container can escalate anyway.
			h.conflict(scPath.Child("privileged"), "privileged containers can always escalate privileges; remove privileged: true")
		case addsSysAdmin(sc) >= 0:
			h.conflict(scPath.Child("capabilities", "add").Index(addsSysAdmin(sc)), "SYS_ADMIN allows privilege escalation; remove it from capabilities.add")
		default:
			missing.AllowPrivilegeEscalation = ptr.To(false)
			missingAny = true
		}
	}
	if h.cfg.SeccompRuntimeDefault {
		switch {
		case sc != nil && sc.SeccompProfile != nil:
			if sc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
				h.conflict(scPath.Child("seccompProfile", "type"), "set to Unconfined; remove it so bulwark sets RuntimeDefault")
			}
		case h.in.Spec.SecurityContext != nil && h.in.Spec.SecurityContext.SeccompProfile != nil:
			if h.in.Spec.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined && !h.podSeccompFlagged {
				h.podSeccompFlagged = true
				h.conflict(h.in.SpecPath.Child("securityContext", "seccompProfile", "type"), "set to Unconfined for the whole pod; remove it so bulwark sets RuntimeDefault")
			}
		default:
			missing.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
			missingAny = true
		}
	}
	if !missingAny || !h.in.Pod {
		// Workload templates are never mutated; their Pods are, when created.
		return
	}
	switch {
	case h.in.Stage == StageValidate:
		h.reportMissing(scPath, &missing)
	case h.cfg.Mode != ModeAudit:
		// Audit mode only records what hardening would add; it changes nothing.
		h.patch(c, &missing)
	}
}

func (h *hardener) conflict(p *field.Path, detail string) {
	if h.in.Stage != StageValidate {
		return
	}
	h.verdicts = append(h.verdicts, Verdict{Check: CheckHardening, Reason: ReasonHardeningRejected, Action: h.act, Path: p.String(), Detail: detail})
}

func (h *hardener) reportMissing(scPath *field.Path, missing *corev1.SecurityContext) {
	const detail = "unset; bulwark's mutating webhook sets it, so it did not run on this request"
	add := func(p *field.Path) {
		h.verdicts = append(h.verdicts, Verdict{Check: CheckHardening, Reason: ReasonHardeningMissing, Action: h.act, Path: p.String(), Detail: detail})
	}
	if missing.Capabilities != nil {
		add(scPath.Child("capabilities", "drop"))
	}
	if missing.ReadOnlyRootFilesystem != nil {
		add(scPath.Child("readOnlyRootFilesystem"))
	}
	if missing.AllowPrivilegeEscalation != nil {
		add(scPath.Child("allowPrivilegeEscalation"))
	}
	if missing.SeccompProfile != nil {
		add(scPath.Child("seccompProfile"))
	}
}

// patch adds exactly the missing fields: the whole securityContext when the
// container has none, otherwise one operation per field.
func (h *hardener) patch(c container, missing *corev1.SecurityContext) {
	sc := c.securityContext
	base := c.patchPath + "/securityContext"
	if sc == nil {
		h.patches = append(h.patches, Patch{Op: "add", Path: base, Value: missing})
	} else {
		if missing.Capabilities != nil {
			switch {
			case sc.Capabilities == nil:
				h.patches = append(h.patches, Patch{Op: "add", Path: base + "/capabilities", Value: missing.Capabilities})
			default:
				h.patches = append(h.patches, appendPatch(base+"/capabilities/drop", sc.Capabilities.Drop == nil, corev1.Capability("ALL")))
			}
		}
		if missing.ReadOnlyRootFilesystem != nil {
			h.patches = append(h.patches, Patch{Op: "add", Path: base + "/readOnlyRootFilesystem", Value: true})
		}
		if missing.AllowPrivilegeEscalation != nil {
			h.patches = append(h.patches, Patch{Op: "add", Path: base + "/allowPrivilegeEscalation", Value: false})
		}
		if missing.SeccompProfile != nil {
			h.patches = append(h.patches, Patch{Op: "add", Path: base + "/seccompProfile", Value: missing.SeccompProfile})
		}
	}
	// Volumes cannot be added to a running pod, so ephemeral containers get no /tmp.
	if h.cfg.TmpEmptyDir && missing.ReadOnlyRootFilesystem != nil && c.list != listEphemeral && !mountsTmp(c.volumeMounts) {
		mount := corev1.VolumeMount{Name: TmpVolumeName, MountPath: "/tmp"}
		h.patches = append(h.patches, appendPatch(c.patchPath+"/volumeMounts", c.volumeMounts == nil, mount))
		h.needTmpVolume = true
	}
}

// appendPatch appends value to the JSON array at p, creating the array when absent.
func appendPatch(p string, absent bool, value any) Patch {
	if absent {
		return Patch{Op: "add", Path: p, Value: []any{value}}
	}
	return Patch{Op: "add", Path: p + "/-", Value: value}
}

func dropsAll(sc *corev1.SecurityContext) bool {
	if sc == nil || sc.Capabilities == nil {
		return false
	}
	for _, c := range sc.Capabilities.Drop {
		// Exactly "ALL", as Pod Security Admission's restricted profile requires.
		if c == "ALL" {
			return true
		}
	}
	return false
}

// addsSysAdmin returns the index of SYS_ADMIN in capabilities.add, or -1.
func addsSysAdmin(sc *corev1.SecurityContext) int {
	if sc == nil || sc.Capabilities == nil {
		return -1
	}
	for i, c := range sc.Capabilities.Add {
		if s := strings.ToUpper(string(c)); s == "SYS_ADMIN" || s == "CAP_SYS_ADMIN" {
			return i
		}
	}
	return -1
}

func mountsTmp(mounts []corev1.VolumeMount) bool {
	for _, m := range mounts {
		if path.Clean(m.MountPath) == "/tmp" {
			return true
		}
	}
	return false
}

func hasVolume(spec *corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}
