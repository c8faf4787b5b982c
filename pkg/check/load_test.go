package check

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const multi = `# leading comment
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a}
    spec:
      containers:
        - name: one
          image: x
        - name: two
          image: y
---
---
{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b"},
 "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "z"}]}}}}
`

func TestLoadListsJSONAndLines(t *testing.T) {
	docs, err := Load([]string{Stdin}, strings.NewReader(multi))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("got %d documents, want 2 (a List item and a JSON object)", len(docs))
	}
	a, b := docs[0], docs[1]
	if a.Kind != "Pod" || a.Name != "a" || a.Index != 0 || a.Item != 0 || a.Where() != "-: document 1 item 1" {
		t.Errorf("first = %+v (%s)", a, a.Where())
	}
	if b.Kind != "Deployment" || b.Index != 2 || b.Item != -1 || b.Line != 16 {
		t.Errorf("second = %+v", b)
	}
	for path, want := range map[string]int{
		"spec.containers[1].image":               13,
		"spec.containers[0]":                     10,
		"spec.containers[5].image":               9, // absent: the closest ancestor, by its key
		"spec.containers[0].securityContext.foo": 10,
		"metadata":                               7,
	} {
		if got := a.LineOf(path); got != want {
			t.Errorf("LineOf(%s) = %d, want %d", path, got, want)
		}
	}
	if got := b.LineOf("spec.template.spec.containers[0].image"); got != 17 {
		t.Errorf("JSON LineOf = %d, want 17", got)
	}
}

func TestLoadErrorsNameFileAndDocument(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\n---\n- a list\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\napiVersion: v1\nkind: Pod\n"
	tests := map[string]struct {
		paths []string
		stdin string
		want  string
	}{
		"not an object":     {paths: []string{bad}, want: bad + ": document 2: not an object"},
		"directory, empty":  {paths: []string{t.TempDir()}, want: "no objects in the input"},
		"alias bomb":        {paths: []string{Stdin}, stdin: bomb, want: "-: document 1:"},
		"missing directory": {paths: []string{filepath.Join(dir, "nope")}, want: "nope"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(tc.paths, strings.NewReader(tc.stdin))
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an InputError containing %q", err, tc.want)
			}
		})
	}
}

func TestYAMLIsReadAsKubectlReadsIt(t *testing.T) {
	docs, err := Load([]string{Stdin}, strings.NewReader("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {1: one}}\nspec:\n  containers:\n    - name: c\n      image: x\n      securityContext: {readOnlyRootFilesystem: no}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := `"readOnlyRootFilesystem":false`
	if !strings.Contains(string(docs[0].JSON), want) || !strings.Contains(string(docs[0].JSON), `"1":"one"`) {
		t.Errorf("JSON %s; want YAML 1.1 booleans and string keys like kubectl", docs[0].JSON)
	}
}
