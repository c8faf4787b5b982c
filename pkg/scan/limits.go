package scan

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Limits: a scan of an image larger than these is refused, not
// attempted.
const (
	DefaultMaxCompressedBytes   = 2 << 30 // 2 GiB
	DefaultMaxUncompressedBytes = 8 << 30 // 8 GiB
	DefaultMaxFiles             = 500_000
	DefaultMaxLayers            = 128
	DefaultMaxDuration          = 5 * time.Minute
)

// Limits bound one scan. Zero fields take the defaults above; negative ones are
// invalid. Byte, file and layer limits apply to each platform's image; the
// duration to the whole scan.
type Limits struct {
	// MaxCompressedBytes bounds the sum of the layer and config sizes the
	// manifest declares, checked before any blob is read (the registry client
	// refuses to read past a declared size).
	MaxCompressedBytes int64
	// MaxUncompressedBytes bounds the bytes of all layers once decompressed,
	// checked while unpacking: a decompression bomb stops at the limit.
	MaxUncompressedBytes int64
	// MaxFiles bounds the tar entries of all layers, checked while unpacking.
	MaxFiles int
	// MaxLayers bounds the layers of the manifest, checked before any blob is read.
	MaxLayers int
	// MaxDuration bounds the wall time of the scan.
	MaxDuration time.Duration
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxCompressedBytes == 0 {
		l.MaxCompressedBytes = DefaultMaxCompressedBytes
	}
	if l.MaxUncompressedBytes == 0 {
		l.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxLayers == 0 {
		l.MaxLayers = DefaultMaxLayers
	}
	if l.MaxDuration == 0 {
		l.MaxDuration = DefaultMaxDuration
	}
	return l
}

// Validate reports a negative limit.
func (l Limits) Validate() error {
	if l.MaxCompressedBytes < 0 || l.MaxUncompressedBytes < 0 || l.MaxFiles < 0 || l.MaxLayers < 0 || l.MaxDuration < 0 {
		return fmt.Errorf("scan limits %+v: must not be negative", l)
	}
	return nil
}

// ErrLimits is wrapped by every error about an image too large (or too slow) to
// scan: errors.Is(err, ErrLimits). errors.As finds a *LimitError with detail.
var ErrLimits = errors.New("exceeds scan limits")

// The limits a LimitError names.
const (
	LimitCompressedBytes   = "compressed bytes"
	LimitUncompressedBytes = "uncompressed bytes"
	LimitFiles             = "files"
	LimitLayers            = "layers"
	LimitDuration          = "duration"
)

// LimitError says which limit a scan exceeded. It wraps ErrLimits.
type LimitError struct {
	// Limit is one of the Limit* names.
	Limit string
	// Max is the limit; for LimitDuration, in nanoseconds.
	Max int64
	// Seen is how much had been seen when the scan stopped: the declared total
	// for layers and compressed bytes, the count so far (Max + 1 at least) for
	// files and uncompressed bytes. 0 for LimitDuration.
	Seen int64
}

func (e *LimitError) Error() string {
	if e.Limit == LimitDuration {
		return fmt.Sprintf("%v: %s: took longer than %s", ErrLimits, e.Limit, time.Duration(e.Max))
	}
	return fmt.Sprintf("%v: %s: %d, limit %d", ErrLimits, e.Limit, e.Seen, e.Max)
}

func (e *LimitError) Unwrap() error { return ErrLimits }
