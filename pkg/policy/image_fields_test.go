package policy

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestEachImageVisitsEveryImageField walks corev1.PodSpec by reflection, plants a
// unique value in every image-bearing field it finds (a string field named Image, or
// Reference inside an *Image* struct), and fails when EachImage does not visit one.
// A Kubernetes upgrade that adds an image field breaks this test until the extractor
// learns it.
func TestEachImageVisitsEveryImageField(t *testing.T) {
	var spec corev1.PodSpec
	planted := map[string]string{} // marker → Go path
	plant(reflect.ValueOf(&spec).Elem(), "PodSpec", planted, map[reflect.Type]bool{})
	if len(planted) < 4 {
		t.Fatalf("found only %d image fields: %v; the walk is broken", len(planted), planted)
	}

	visited := map[string]string{}
	EachImage(&spec, field.NewPath("spec"), func(image string, path *field.Path) {
		visited[image] = path.String()
	})
	var missing []string
	for marker, goPath := range planted {
		if _, ok := visited[marker]; !ok {
			missing = append(missing, goPath)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("EachImage does not visit these image fields: %v", missing)
	}

	var paths []string
	for _, p := range visited {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	want := []string{
		"spec.containers[0].image",
		"spec.ephemeralContainers[0].image",
		"spec.initContainers[0].image",
		"spec.volumes[0].image.reference",
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("field paths (-want +got):\n%s", diff)
	}
}

func isImageField(parent reflect.Type, f reflect.StructField) bool {
	if f.Type.Kind() != reflect.String || f.Type.PkgPath() != "" { // plain string only
		return false
	}
	return f.Name == "Image" || (f.Name == "Reference" && strings.Contains(parent.Name(), "Image"))
}

// plant fills v: every pointer allocated, every slice given one element, every
// image field set to a unique marker. Recursive types are cut at their second visit.
func plant(v reflect.Value, goPath string, planted map[string]string, onStack map[reflect.Type]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if onStack[v.Type().Elem()] {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		plant(v.Elem(), goPath, planted, onStack)
	case reflect.Slice:
		if onStack[v.Type().Elem()] {
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		plant(v.Index(0), goPath+"[0]", planted, onStack)
	case reflect.Struct:
		onStack[v.Type()] = true
		defer delete(onStack, v.Type())
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := goPath + "." + f.Name
			if isImageField(v.Type(), f) {
				marker := fmt.Sprintf("marker-%d", len(planted))
				v.Field(i).SetString(marker)
				planted[marker] = p
				continue
			}
			plant(v.Field(i), p, planted, onStack)
		}
	}
}
