package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// podsTimeout bounds the wait for a controller to create a workload's Pods.
const podsTimeout = 60 * time.Second

// outcome is what applying a sample came to.
type outcome string

const (
	admitted outcome = "ADMITTED"
	denied   outcome = "DENIED"
	// failed is any other error: not a decision of bulwark.
	failed outcome = "FAILED"
)

// sample is one manifest of deploy/samples. Its opening comment states the outcome
// it should get and why: "# Admitted: …" or "# Denied: …".
type sample struct {
	file    string
	expect  outcome
	about   []string // the opening comment, one entry a line
	objects []runtime.Object
}

func loadSamples(dir string) ([]sample, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no samples in %s", dir)
	}
	samples := make([]sample, 0, len(files))
	for _, f := range files {
		s, err := loadSample(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		samples = append(samples, s)
	}
	return samples, nil
}

func loadSample(file string) (sample, error) {
	s := sample{file: file}
	data, err := os.ReadFile(file)
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, "#") {
			break
		}
		s.about = append(s.about, strings.TrimSpace(strings.TrimPrefix(line, "#")))
	}
	const want = "the file must open with a comment `# Admitted: why` or `# Denied: why`"
	if len(s.about) == 0 {
		return s, errors.New(want)
	}
	expect, why, _ := strings.Cut(s.about[0], ":")
	switch strings.ToLower(strings.TrimSpace(expect)) {
	case "admitted":
		s.expect = admitted
	case "denied":
		s.expect = denied
	default:
		return s, errors.New(want)
	}
	why = strings.TrimSpace(why)
	if why != "" {
		why = strings.ToUpper(why[:1]) + why[1:]
	}
	s.about[0] = why

	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return s, err
		}
		s.objects = append(s.objects, obj)
	}
	return s, nil
}

// stripComments drops the comment and separator lines of a YAML document, to
// tell an empty document from one with content.
func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		t := bytes.TrimSpace(line)
		if !bytes.HasPrefix(t, []byte("#")) && !bytes.Equal(t, []byte("---")) {
			out = append(out, line...)
		}
	}
	return out
}

// runner applies samples as a kubectl user and reads back what was stored.
type runner struct {
	kubectl   string
	client    kubernetes.Interface
	namespace string // the kubeconfig context's
}

// runSamples applies every sample as user dev and prints each outcome. It reports
// whether each got the outcome its header states; err is for the demo itself
// failing (interrupted, kubectl not runnable).
func runSamples(ctx context.Context, kubectl string) (bool, error) {
	samples, err := loadSamples(samplesDir)
	if err != nil {
		return false, err
	}
	// The samples that use the demo registry's images, written at start.
	registrySamples, err := loadSamples(demoSamplesDir)
	if err != nil {
		return false, err
	}
	samples = append(samples, registrySamples...)
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfigFile},
		&clientcmd.ConfigOverrides{CurrentContext: cluster.Dev},
	)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return false, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return false, fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, err
	}
	r := &runner{kubectl: kubectl, client: client, namespace: ns}

	section("Samples from %s/, applied with kubectl as user %q in namespace %s", samplesDir, cluster.Dev, ns)
	fmt.Printf("    kubectl below is %s --kubeconfig %s --context %s\n", kubectl, kubeconfigFile, cluster.Dev)
	counts := map[outcome]int{}
	var unexpected []string
	for _, s := range samples {
		got, ok, err := r.run(ctx, s)
		if err != nil {
			return false, err
		}
		counts[got]++
		if !ok {
			unexpected = append(unexpected, filepath.Base(s.file))
		}
	}

	section("Image scans, for auditors: kubectl --context admin get imagescans")
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfigFile, "--context", cluster.Admin, "get", "imagescans").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("kubectl get imagescans: %w: %s", err, out)
	}
	printLines("    ", strings.Split(strings.TrimRight(string(out), "\n"), "\n"))

	summary := fmt.Sprintf("%d samples: %d admitted, %d denied", len(samples), counts[admitted], counts[denied])
	if counts[failed] > 0 {
		summary += fmt.Sprintf(", %d failed", counts[failed])
	}
	section("Summary: %s", summary)
	if len(unexpected) > 0 {
		fmt.Printf("    NOT as their header states: %s\n", strings.Join(unexpected, ", "))
		return false, nil
	}
	fmt.Println("    each as its header states")
	return true, nil
}

// run applies one sample and prints what kubectl printed, the outcome and, when
// admitted, the hardening of the stored Pods. ok is false when the outcome is not
// the expected one or the hardening cannot be shown.
func (r *runner) run(ctx context.Context, s sample) (got outcome, ok bool, err error) {
	fmt.Printf("\n--- %s (expected: %s)\n", filepath.Base(s.file), strings.ToLower(string(s.expect)))
	for _, line := range s.about {
		fmt.Println("    " + line)
	}
	fmt.Printf("\n  $ kubectl apply -f %s\n", s.file)
	out, err := exec.CommandContext(ctx, r.kubectl, "--kubeconfig", kubeconfigFile, "--context", cluster.Dev, "apply", "-f", s.file).CombinedOutput()
	if ctx.Err() != nil {
		return "", false, ctx.Err()
	}
	for line := range strings.Lines(strings.TrimRight(string(out), "\n")) {
		fmt.Print("    " + line)
	}
	fmt.Println()
	var exit *exec.ExitError
	switch {
	case err == nil:
		got = admitted
	case !errors.As(err, &exit):
		return "", false, fmt.Errorf("run kubectl: %w", err)
	// kubectl prints the API server's reason: admission webhook "…" denied the request: …
	case strings.Contains(string(out), "denied the request"):
		got = denied
	default:
		got = failed
	}
	ok = got == s.expect
	if ok {
		fmt.Printf("\n  => %s, as expected\n", got)
	} else {
		fmt.Printf("\n  => %s, but the sample expects %s\n", got, s.expect)
	}
	if got != admitted {
		return got, ok, nil
	}
	for _, obj := range s.objects {
		if err := r.showHardening(ctx, obj); err != nil {
			if ctx.Err() != nil {
				return got, false, ctx.Err()
			}
			fmt.Printf("  could not show the hardening: %v\n", err)
			ok = false
		}
	}
	return got, ok, nil
}

// showHardening prints, per container, the securityContext of the stored Pods of
// obj against what the manifest wrote: a Pod itself, or the Pods a controller
// creates from a workload's template.
func (r *runner) showHardening(ctx context.Context, obj runtime.Object) error {
	if pod, ok := obj.(*corev1.Pod); ok {
		stored, err := r.client.CoreV1().Pods(r.ns(pod.Namespace)).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get pod %s: %w", pod.Name, err)
		}
		fmt.Printf("  Pod %s as stored (+ added by bulwark, = as written in the manifest):\n", pod.Name)
		printLines("    ", hardening(&pod.Spec, &stored.Spec))
		return nil
	}
	w := workloadOf(obj)
	if w == nil {
		return nil
	}
	if w.noPods != "" {
		fmt.Printf("  %s %s: %s\n", w.kind, w.name, w.noPods)
		return nil
	}
	// bulwark never mutates a workload's template, only the Pods made from it.
	stored, err := r.storedWorkload(ctx, w)
	if err != nil {
		return err
	}
	if changed := slices.ContainsFunc(hardening(&w.template.Spec, &stored.template.Spec), isChange); changed {
		return fmt.Errorf("the %s's template was changed on its way to storage", w.kind)
	}
	pods, err := r.waitForPods(ctx, r.ns(w.namespace), labels.SelectorFromSet(w.template.Labels), w.pods)
	if err != nil {
		return fmt.Errorf("pods of %s %s: %w", w.kind, w.name, err)
	}
	fmt.Printf("  The %s's template is stored as written; the controller manager created %d Pods from it,\n", w.kind, len(pods))
	fmt.Println("  and bulwark hardened each on its way to storage (+ added by bulwark, = as written in the template):")
	// Pods from one template are hardened alike: print each distinct result once.
	type group struct {
		pods  []string
		lines []string
	}
	var groups []*group
	for _, p := range pods {
		lines := hardening(&w.template.Spec, &p.Spec)
		i := slices.IndexFunc(groups, func(g *group) bool { return slices.Equal(g.lines, lines) })
		if i < 0 {
			groups = append(groups, &group{lines: lines})
			i = len(groups) - 1
		}
		groups[i].pods = append(groups[i].pods, p.Name)
	}
	for _, g := range groups {
		fmt.Printf("    Pod %s\n", strings.Join(g.pods, ", Pod "))
		printLines("      ", g.lines)
	}
	return nil
}

// storedWorkload reads w back as kubectl gets it.
func (r *runner) storedWorkload(ctx context.Context, w *workload) (*workload, error) {
	ref := strings.ToLower(w.kind) + "/" + w.name
	out, err := exec.CommandContext(ctx, r.kubectl, "--kubeconfig", kubeconfigFile, "--context", cluster.Dev,
		"--namespace", r.ns(w.namespace), "get", ref, "--output", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl get %s: %w", ref, err)
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(out, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", ref, err)
	}
	stored := workloadOf(obj)
	if stored == nil || stored.template == nil {
		return nil, fmt.Errorf("%s: no pod template", ref)
	}
	return stored, nil
}

// waitForPods lists the Pods matching sel until there are want of them, for up to
// podsTimeout.
func (r *runner) waitForPods(ctx context.Context, ns string, sel labels.Selector, want int32) ([]corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, podsTimeout)
	defer cancel()
	for {
		list, err := r.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err == nil && len(list.Items) >= int(want) {
			slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
			return list.Items, nil
		}
		select {
		case <-ctx.Done():
			n := 0
			if list != nil {
				n = len(list.Items)
			}
			return nil, fmt.Errorf("%d of %d Pods after %s (last error: %v); `kubectl get events` may say why", n, want, podsTimeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (r *runner) ns(ns string) string {
	if ns == "" {
		return r.namespace
	}
	return ns
}

// workload is an object whose controller creates Pods from a template.
type workload struct {
	kind, name, namespace string
	template              *corev1.PodTemplateSpec
	// pods is how many Pods its controller creates at once.
	pods int32
	// noPods says why its controller creates none here, if it does not.
	noPods string
}

func workloadOf(obj runtime.Object) *workload {
	one := func(n *int32) int32 {
		if n == nil {
			return 1
		}
		return *n
	}
	var w *workload
	switch o := obj.(type) {
	case *appsv1.Deployment:
		w = &workload{kind: "Deployment", name: o.Name, namespace: o.Namespace, template: &o.Spec.Template, pods: one(o.Spec.Replicas)}
	case *appsv1.ReplicaSet:
		w = &workload{kind: "ReplicaSet", name: o.Name, namespace: o.Namespace, template: &o.Spec.Template, pods: one(o.Spec.Replicas)}
	case *appsv1.StatefulSet:
		// With the default OrderedReady policy the next Pod waits for the previous
		// one to be Ready, which never happens without a kubelet.
		w = &workload{kind: "StatefulSet", name: o.Name, namespace: o.Namespace, template: &o.Spec.Template, pods: min(one(o.Spec.Replicas), 1)}
	case *appsv1.DaemonSet:
		w = &workload{kind: "DaemonSet", name: o.Name, noPods: "this control plane has no nodes, so it creates no Pods; they would be hardened when created"}
	case *batchv1.Job:
		w = &workload{kind: "Job", name: o.Name, namespace: o.Namespace, template: &o.Spec.Template, pods: one(o.Spec.Parallelism)}
	case *batchv1.CronJob:
		w = &workload{kind: "CronJob", name: o.Name, noPods: "its Jobs and their Pods come on schedule; bulwark hardens the Pods when they are created"}
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return nil
		}
		w = &workload{kind: "ReplicationController", name: o.Name, namespace: o.Namespace, template: o.Spec.Template, pods: one(o.Spec.Replicas)}
	default:
		return nil
	}
	if w.noPods == "" && w.pods == 0 {
		w.noPods = "scaled to zero, so no Pods yet"
	}
	return w
}

// hardening compares the containers' securityContext in a stored Pod with the
// manifest's: "+ field: value" for what bulwark added, "= field: value" for what
// the manifest set, "~" for a changed value (bulwark never changes one).
func hardening(manifest, stored *corev1.PodSpec) []string {
	written := map[string]*corev1.SecurityContext{}
	for _, c := range manifest.InitContainers {
		written["init container "+c.Name] = c.SecurityContext
	}
	for _, c := range manifest.Containers {
		written["container "+c.Name] = c.SecurityContext
	}
	var lines []string
	add := func(kind string, cs []corev1.Container) {
		for _, c := range cs {
			label := kind + " " + c.Name
			lines = append(lines, label)
			before, after := flatten(written[label]), flatten(c.SecurityContext)
			keys := make([]string, 0, len(after))
			for k := range after {
				keys = append(keys, k)
			}
			for k := range before {
				if _, ok := after[k]; !ok {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				b, inBefore := before[k]
				a, inAfter := after[k]
				switch {
				case !inBefore:
					lines = append(lines, fmt.Sprintf("  + %s: %s", k, a))
				case !inAfter:
					lines = append(lines, fmt.Sprintf("  - %s: %s (removed)", k, b))
				case a == b:
					lines = append(lines, fmt.Sprintf("  = %s: %s", k, a))
				default:
					lines = append(lines, fmt.Sprintf("  ~ %s: %s (the manifest has %s)", k, a, b))
				}
			}
			if len(keys) == 0 {
				lines = append(lines, "  (no securityContext)")
			}
		}
	}
	add("init container", stored.InitContainers)
	add("container", stored.Containers)
	return lines
}

// isChange reports whether a line of hardening is a change to what was written.
func isChange(line string) bool {
	line = strings.TrimSpace(line)
	return strings.HasPrefix(line, "+ ") || strings.HasPrefix(line, "- ") || strings.HasPrefix(line, "~ ")
}

// flatten renders a securityContext as field path → value, e.g.
// "seccompProfile.type" → "RuntimeDefault", "capabilities.drop" → "[ALL]".
func flatten(sc *corev1.SecurityContext) map[string]string {
	out := map[string]string{}
	if sc == nil {
		return out
	}
	raw, err := json.Marshal(sc)
	if err != nil {
		return out
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return out
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if obj, ok := v.(map[string]any); ok {
			for k, x := range obj {
				if prefix != "" {
					k = prefix + "." + k
				}
				walk(k, x)
			}
			return
		}
		out[prefix] = formatValue(v)
	}
	walk("", m)
	return out
}

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = formatValue(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func printLines(indent string, lines []string) {
	for _, l := range lines {
		fmt.Println(indent + l)
	}
}

// printTryIt tells how to use the running demo.
func printTryIt(kubectl string) {
	kubeconfig, err := filepath.Abs(kubeconfigFile)
	if err != nil {
		kubeconfig = kubeconfigFile
	}
	section("Try it yourself")
	fmt.Printf(`    export KUBECONFIG=%s
    alias kubectl=%s
        # the kubectl built with the control plane; any recent kubectl works too

    kubectl apply -f deploy/samples/02-pod-unpinned.yaml   # as dev in namespace %s: denied
    kubectl get pod web -o jsonpath='{.spec.containers[0].securityContext}{"\n"}'
    kubectl get pods -l app=api     # the Deployment's hardened Pods; Pending, as there is no kubelet
    kubectl get events --field-selector reportingComponent=bulwark   # denials and exemptions, for auditors
    kubectl --context admin get mutatingwebhookconfigurations,validatingwebhookconfigurations
    tail -f %s          # the webhook's log, one JSON "Decision" line per decision

    Contexts: dev (current; pods and workloads in %s only), ops (admin in every namespace),
    admin (cluster-admin): add --context admin, or kubectl config use-context admin.
    Namespaces kube-system and bulwark-system are exempt from bulwark by design.

    make demo        shows the samples again while the demo runs
    make demo-down   stops the webhook and the control plane
`, kubeconfig, kubectl, cluster.DevNamespace, webhookLog, cluster.DevNamespace)
}
