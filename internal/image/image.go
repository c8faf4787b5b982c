// Package image builds bulwark's container image without a Docker daemon, with
// go-containerregistry: a static binary on a minimal non-root base, with the OCI
// annotations that name the base by digest, so bulwark's own base-image check
// can judge it. The Dockerfile builds the same layout for users with Docker.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user and group the image runs as (distroless's "nonroot").
const NonRoot = 65532

// OCI annotations and labels.
const (
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	AnnotationSource     = "org.opencontainers.image.source"
	AnnotationVersion    = "org.opencontainers.image.version"
	AnnotationTitle      = "org.opencontainers.image.title"
)

// Epoch stamps every file and the image config, so a build is reproducible.
var Epoch = time.Unix(0, 0).UTC()

// file is one entry of a layer.
type file struct {
	name string
	mode int64
	body []byte
	dir  bool
}

// StaticBase returns a minimal base image like distroless static:nonroot: the
// user and group nonroot (65532), root's and nonroot's home, /tmp, and the CA
// bundle caBundle at /etc/ssl/certs/ca-certificates.crt. It is what `make image`
// builds on where the distroless image cannot be pulled (no network).
func StaticBase(caBundle []byte) (v1.Image, error) {
	files := []file{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, body: []byte("hosts: files dns\n")},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: caBundle},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/nonroot/", dir: true, mode: 0o700},
		{name: "root/", dir: true, mode: 0o700},
		{name: "tmp/", dir: true, mode: 0o1777},
	}
	layer, err := tarLayer(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return configure(img, func(c *v1.Config) {
		c.User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)
		c.WorkingDir = "/home/nonroot"
		c.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	})
}

// Options describe an image of bulwark on a base.
type Options struct {
	// Base is the image to build on, named BaseName and pinned by its digest in
	// the annotations.
	Base     v1.Image
	BaseName string
	// Binaries maps paths in the image (usr/local/bin/webhook) to local files.
	Binaries map[string]string
	// Entrypoint is the command the image runs.
	Entrypoint []string
	// Title, Version and Source are OCI annotations (and labels).
	Title, Version, Source string
}

// Build returns bulwark's image: Base plus one layer with the binaries (owned by
// root, executable, not writable by the user), running as nonroot, with the OCI
// annotations on the manifest and as config labels.
func Build(o Options) (v1.Image, error) {
	if o.Base == nil || o.BaseName == "" {
		return nil, fmt.Errorf("base image and its name are required")
	}
	baseDigest, err := o.Base.Digest()
	if err != nil {
		return nil, fmt.Errorf("base digest: %w", err)
	}
	var files []file
	dirs := map[string]bool{}
	names := make([]string, 0, len(o.Binaries))
	for n := range o.Binaries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for d := path.Dir(n); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		files = append(files, file{name: d + "/", dir: true, mode: 0o755})
	}
	for _, n := range names {
		body, err := os.ReadFile(o.Binaries[n])
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: n, mode: 0o555, body: body})
	}
	layer, err := tarLayer(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(o.Base, layer)
	if err != nil {
		return nil, err
	}
	ann := map[string]string{
		AnnotationBaseName:   o.BaseName,
		AnnotationBaseDigest: baseDigest.String(),
		AnnotationTitle:      o.Title,
		AnnotationVersion:    o.Version,
		AnnotationSource:     o.Source,
	}
	img, err = configure(img, func(c *v1.Config) {
		c.User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)
		c.Entrypoint = o.Entrypoint
		c.Cmd = nil
		c.Labels = ann
	})
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, ann).(v1.Image), nil
}

func configure(img v1.Image, edit func(*v1.Config)) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	edit(&cf.Config)
	cf.Created = v1.Time{Time: Epoch}
	cf.Author = "bulwark"
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.History = nil
	return mutate.ConfigFile(img, cf)
}

// tarLayer makes a reproducible layer of files, owned by root.
func tarLayer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: Epoch, Uid: 0, Gid: 0, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}
