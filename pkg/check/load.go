// Package check runs bulwark's admission decision on manifests offline, for CI:
// it loads multi-document YAML or JSON (plain manifests, helm template or kustomize
// build output, Lists), remembers where each object and field stands in its file,
// and sends every object through the same admission handlers the webhook serves —
// the mutating pass, then the validating pass on the mutated object.
package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	syaml "sigs.k8s.io/yaml"
)

// MaxFileBytes bounds one input file.
const MaxFileBytes = 16 << 20

// Stdin is the file name that reads standard input.
const Stdin = "-"

// Document is one object of an input file.
type Document struct {
	File string
	// Index is the document's position in its file, from 0; Item is the position
	// within a List document, -1 otherwise.
	Index, Item int
	// Line is where the object starts in the file, from 1.
	Line       int
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	JSON       []byte
	node       *yaml.Node
}

// Where names the document for a person: file, document and item.
func (d *Document) Where() string {
	s := fmt.Sprintf("%s: document %d", d.File, d.Index+1)
	if d.Item >= 0 {
		s += fmt.Sprintf(" item %d", d.Item+1)
	}
	return s
}

// InputError is a problem with the input rather than a policy decision.
type InputError struct {
	File  string
	Index int // -1: the whole file
	Err   error
}

func (e *InputError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: document %d: %v", e.File, e.Index+1, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }

// Load reads every document of paths: files, directories (their .yaml, .yml and
// .json files, recursively, in name order) or "-" for stdin.
func Load(paths []string, stdin io.Reader) ([]Document, error) {
	if len(paths) == 0 {
		return nil, &InputError{File: "(none)", Index: -1, Err: errors.New("no input: name files, directories or - for stdin with -f")}
	}
	var docs []Document
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, &InputError{File: p, Index: -1, Err: err}
		}
		for _, f := range files {
			data, err := readFile(f, stdin)
			if err != nil {
				return nil, &InputError{File: f, Index: -1, Err: err}
			}
			d, err := parse(f, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	if len(docs) == 0 {
		return nil, &InputError{File: strings.Join(paths, ", "), Index: -1, Err: errors.New("no objects in the input")}
	}
	return docs, nil
}

func expand(p string) ([]string, error) {
	if p == Stdin {
		return []string{Stdin}, nil
	}
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func readFile(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name != Stdin {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	return data, nil
}

// parse splits a file into its objects, expanding Lists.
func parse(file string, data []byte) ([]Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []Document
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, &InputError{File: file, Index: i, Err: fmt.Errorf("not valid YAML or JSON: %w", err)}
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			continue // an empty document, e.g. after a trailing ---
		}
		expanded, err := expandLists(file, i, -1, n.Content[0], 0)
		if err != nil {
			return nil, &InputError{File: file, Index: i, Err: err}
		}
		docs = append(docs, expanded...)
	}
}

// maxListDepth bounds Lists nested in Lists.
const maxListDepth = 4

// expandLists returns the object at root, or the objects of a List (v1 List,
// DeploymentList, …: any kind ending in List with items), as kubectl applies them.
func expandLists(file string, index, item int, root *yaml.Node, depth int) ([]Document, error) {
	d, err := newDocument(file, index, item, root)
	if err != nil {
		return nil, err
	}
	items := lookup(root, "items")
	if !strings.HasSuffix(d.Kind, "List") || items == nil {
		return []Document{*d}, nil
	}
	if depth >= maxListDepth || items.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: items must be a list, nested at most %d deep", d.Kind, maxListDepth)
	}
	var docs []Document
	for j, it := range items.Content {
		if item >= 0 {
			j = item // nested: keep the outer item's number
		}
		sub, err := expandLists(file, index, j, it, depth+1)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", j+1, err)
		}
		docs = append(docs, sub...)
	}
	return docs, nil
}

func newDocument(file string, index, item int, root *yaml.Node) (*Document, error) {
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("not an object")
	}
	// The node is for line numbers; the JSON is made as kubectl makes it, with
	// sigs.k8s.io/yaml (YAML 1.1: `no` is false, 0777 is octal), so bulwark judges
	// what the API server would receive.
	text, err := yaml.Marshal(root)
	if err != nil {
		return nil, err
	}
	raw, err := syaml.YAMLToJSON(text)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("not an object: %w", err)
	}
	d := &Document{File: file, Index: index, Item: item, Line: root.Line, JSON: raw, node: root}
	d.APIVersion, _ = obj["apiVersion"].(string)
	d.Kind, _ = obj["kind"].(string)
	if d.APIVersion == "" || d.Kind == "" {
		return nil, errors.New("apiVersion and kind are required")
	}
	if meta, ok := obj["metadata"].(map[string]any); ok {
		d.Name, _ = meta["name"].(string)
		d.Namespace, _ = meta["namespace"].(string)
	}
	return d, nil
}

// lookup returns the value node of key in mapping node m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	_, v := lookupKey(m, key)
	return v
}

// lookupKey returns the key and value nodes of key in mapping node m, or nils.
func lookupKey(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// LineOf returns the line of the field at path (as in a verdict:
// spec.template.spec.containers[1].image) in d, or of its closest ancestor present.
func (d *Document) LineOf(path string) int {
	n, line := d.node, d.Line
	for _, seg := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		if name != "" {
			k, v := lookupKey(n, name)
			if v == nil {
				return line
			}
			n, line = v, k.Line // the key's line: where "image:" stands
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			if !ok {
				return line
			}
			var i int
			if _, err := fmt.Sscanf(idx, "%d", &i); err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}
