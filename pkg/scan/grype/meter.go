package grype

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-dev/bulwark/pkg/scan"
)

// checkManifest enforces the limits a manifest declares, before any blob of the
// image is read: the layer count, and the sum of the layer and config sizes (ggcr
// reads no blob past its declared size).
func checkManifest(m *v1.Manifest, l scan.Limits) error {
	if n := len(m.Layers); n > l.MaxLayers {
		return &scan.LimitError{Limit: scan.LimitLayers, Max: int64(l.MaxLayers), Seen: int64(n)}
	}
	var total int64
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if d.Size < 0 {
			return fmt.Errorf("manifest declares blob %s of negative size %d", d.Digest, d.Size)
		}
		if d.Size > l.MaxCompressedBytes-total { // total+d.Size > limit, without overflow
			seen := total + d.Size
			if seen < 0 {
				seen = math.MaxInt64
			}
			return &scan.LimitError{Limit: scan.LimitCompressedBytes, Max: l.MaxCompressedBytes, Seen: seen}
		}
		total += d.Size
	}
	return nil
}

// budget counts what the layers of one image unpack to, across layers (which
// stereoscope may read concurrently), and remembers the first limit crossed.
type budget struct {
	maxBytes, maxFiles int64
	bytes, files       atomic.Int64
	exceeded           atomic.Pointer[scan.LimitError]
}

func newBudget(l scan.Limits) *budget {
	return &budget{maxBytes: l.MaxUncompressedBytes, maxFiles: int64(l.MaxFiles)}
}

func (b *budget) addBytes(n int64) error {
	return b.add(&b.bytes, n, b.maxBytes, scan.LimitUncompressedBytes)
}

func (b *budget) addFile() error { return b.add(&b.files, 1, b.maxFiles, scan.LimitFiles) }

func (b *budget) add(counter *atomic.Int64, n, limit int64, name string) error {
	if seen := counter.Add(n); seen > limit {
		err := &scan.LimitError{Limit: name, Max: limit, Seen: seen}
		b.exceeded.CompareAndSwap(nil, err)
		return err
	}
	return nil
}

// err returns the first limit crossed, or nil.
func (b *budget) err() error {
	if e := b.exceeded.Load(); e != nil {
		return e
	}
	return nil
}

// meteredImage is an image whose layers unpack within a budget. Stereoscope
// reads the layers through it; everything else is the registry image's.
type meteredImage struct {
	v1.Image
	budget *budget
}

func (i *meteredImage) Layers() ([]v1.Layer, error) {
	layers, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(layers))
	for n, l := range layers {
		out[n] = &meteredLayer{Layer: l, budget: i.budget}
	}
	return out, nil
}

func (i *meteredImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	return i.meter(i.Image.LayerByDigest(h))
}

func (i *meteredImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	return i.meter(i.Image.LayerByDiffID(h))
}

func (i *meteredImage) meter(l v1.Layer, err error) (v1.Layer, error) {
	if err != nil {
		return nil, err
	}
	return &meteredLayer{Layer: l, budget: i.budget}, nil
}

// meteredLayer meters its uncompressed stream.
type meteredLayer struct {
	v1.Layer
	budget *budget
}

func (l *meteredLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	return newMeteredReader(rc, l.budget), nil
}

// errReaderClosed stops the entry counter of a reader closed before its end.
var errReaderClosed = errors.New("layer reader closed")

// meteredReader passes a decompressed layer through, counting its bytes as they
// are read and its tar entries as archive/tar (what stereoscope indexes with)
// sees them, in a goroutine fed through a pipe. A read that crosses a limit
// returns the *scan.LimitError instead of its bytes, so reading stops at the
// limit: a decompression bomb is never expanded past it, and what was read went
// to stereoscope's layer file on disk a buffer at a time, never to memory as a
// whole.
type meteredReader struct {
	rc     io.ReadCloser
	budget *budget
	pw     *io.PipeWriter
	done   chan struct{}
	once   sync.Once
}

func newMeteredReader(rc io.ReadCloser, b *budget) *meteredReader {
	pr, pw := io.Pipe()
	m := &meteredReader{rc: rc, budget: b, pw: pw, done: make(chan struct{})}
	go m.countEntries(pr)
	return m
}

// countEntries counts tar entries until the end of the archive, then drains
// the pipe. On the file limit it closes the pipe with the error, which the next
// write returns. A malformed tar is not its business: stereoscope reports it.
func (m *meteredReader) countEntries(pr *io.PipeReader) {
	defer close(m.done)
	tr := tar.NewReader(pr)
	for {
		if _, err := tr.Next(); err != nil {
			break
		}
		if err := m.budget.addFile(); err != nil {
			pr.CloseWithError(err)
			return
		}
	}
	_, _ = io.Copy(io.Discard, pr)
}

func (m *meteredReader) Read(p []byte) (int, error) {
	n, err := m.rc.Read(p)
	if n > 0 {
		if lerr := m.budget.addBytes(int64(n)); lerr != nil {
			return 0, lerr
		}
		// Returns once the counter has consumed p[:n], or with its limit error.
		if _, werr := m.pw.Write(p[:n]); werr != nil {
			return 0, werr
		}
	}
	if errors.Is(err, io.EOF) {
		// Let the counter see the end, so the last entries are counted.
		m.pw.Close()
		<-m.done
		if lerr := m.budget.err(); lerr != nil {
			return 0, lerr
		}
	}
	return n, err
}

func (m *meteredReader) Close() error {
	m.once.Do(func() {
		m.pw.CloseWithError(errReaderClosed)
		<-m.done
	})
	return m.rc.Close()
}
