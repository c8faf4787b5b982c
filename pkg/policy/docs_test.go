package policy

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestPolicyReferenceListsEveryField keeps docs/policy.md in step with the Policy
// type: every field, by its path in the file, must have a row in the reference.
func TestPolicyReferenceListsEveryField(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	collectPaths(reflect.TypeOf(Policy{}), "", &paths)
	if len(paths) < 5 {
		t.Fatalf("found only %v", paths)
	}
	for _, p := range paths {
		if !strings.Contains(string(doc), "| `"+p+"` |") {
			t.Errorf("docs/policy.md has no row for `%s`", p)
		}
	}
}

func collectPaths(typ reflect.Type, prefix string, out *[]string) {
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && !f.Type.Implements(reflect.TypeFor[json.Marshaler]()) && !reflect.PointerTo(f.Type).Implements(reflect.TypeFor[json.Marshaler]()) {
			collectPaths(f.Type, prefix+name+".", out)
			continue
		}
		*out = append(*out, prefix+name)
	}
}
