package convert

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cloister-cc/cloister/libs/imagefs"
)

// reportStep is how many bytes pass between two progress reports.
const reportStep = 1 << 20

type reporter struct{ fn func(Progress) }

func (r reporter) send(p Progress) {
	if r.fn != nil {
		r.fn(p)
	}
}

// walk lists the final filesystem of the input, streaming each layer
// once (imagefs.TrustedFiles). The layers are metered on their compressed
// side, so that progress counts what is downloaded against the sizes the
// manifest gives, and so that a failed download can be told from a bad
// layer.
//
// extra are layers of the converter's own, applied on top and not metered.
func (s *source) walk(ctx context.Context, rep reporter, extra ...v1.Layer) (*imagefs.List, error) {
	w := &walker{rep: rep, total: sum(s.sizes), n: len(s.layers)}
	layers := make([]v1.Layer, len(s.layers), len(s.layers)+len(extra))
	for i, l := range s.layers {
		ml, err := partial.CompressedToLayer(&meteredLayer{Layer: l, w: w})
		if err != nil {
			return nil, &Error{Reason: ReasonInternal, Err: err}
		}
		layers[i] = ml
	}
	layers = append(layers, extra...)
	w.report()
	list, err := imagefs.TrustedFiles(ctx, layersOnly{Image: s.img, layers: layers})
	if err == nil {
		return list, nil
	}
	what := "reading the layers of " + s.ref.String()
	switch {
	case ctx.Err() != nil:
		if !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return nil, &Error{Reason: ReasonTimeout, Err: fmt.Errorf("%s: %w", what, err)}
	case w.readErr != nil:
		r, hint := reasonOf(w.readErr, ReasonInvalidImage)
		if hint != "" {
			what += ": " + hint
		}
		return nil, &Error{Reason: r, Err: fmt.Errorf("%s: %w", what, err)}
	}
	return nil, &Error{Reason: ReasonInvalidImage, Err: fmt.Errorf("%s: %w", what, err)}
}

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}

// layersOnly is an image with other layers, for imagefs.TrustedFiles,
// which needs nothing else.
type layersOnly struct {
	v1.Image
	layers []v1.Layer
}

func (l layersOnly) Layers() ([]v1.Layer, error) { return l.layers, nil }

// walker counts the compressed bytes read from the input's layers. It is
// used from the goroutine that calls imagefs.TrustedFiles only.
type walker struct {
	rep         reporter
	n, finished int
	total, done int64
	last        int64
	readErr     error // the first failure to fetch a layer
}

func (w *walker) report() {
	w.last = w.done
	w.rep.send(Progress{Phase: PhasePull, Layers: w.finished, TotalLayers: w.n, Bytes: w.done, TotalBytes: w.total})
}

func (w *walker) failed(err error) {
	if w.readErr == nil {
		w.readErr = err
	}
}

// meteredLayer is an input layer whose compressed stream is metered; its
// Uncompressed comes from partial.CompressedToLayer, which recognises
// gzip, zstd and plain tar.
type meteredLayer struct {
	v1.Layer
	w *walker
}

func (l *meteredLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		l.w.failed(err)
		return nil, err
	}
	return &meteredReader{rc: rc, w: l.w}, nil
}

type meteredReader struct {
	rc   io.ReadCloser
	w    *walker
	done bool
}

func (r *meteredReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	w := r.w
	w.done += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		if !r.done {
			r.done = true
			w.finished++
			w.report()
		}
	case err != nil:
		w.failed(err)
	case w.done-w.last >= reportStep:
		w.report()
	}
	return n, err
}

func (r *meteredReader) Close() error { return r.rc.Close() }

// push writes img with remote.Write, which reuses the input's layers: it
// mounts them from the input repository when the registry is the same
// and otherwise copies their compressed bytes, as they are.
// The caller's extra options come after Convert's, progress included.
func push(ref name.Tag, img v1.Image, layers int, base, extra []remote.Option, rep reporter) error {
	updates := make(chan v1.Update, 64)
	stop, done := make(chan struct{}), make(chan struct{})
	var last v1.Update
	go func() {
		defer close(done)
		var reported int64 = -reportStep
		handle := func(u v1.Update) {
			if u.Error != nil {
				return
			}
			last = u
			if u.Complete-reported >= reportStep || u.Complete == u.Total {
				reported = u.Complete
				rep.send(Progress{Phase: PhasePush, TotalLayers: layers, Bytes: u.Complete, TotalBytes: u.Total})
			}
		}
		for {
			select {
			case u, ok := <-updates:
				if !ok {
					return
				}
				handle(u)
			case <-stop:
				// Write has returned: drain what it sent, if it used this
				// channel at all (an option in Request.Options may replace it).
				for {
					select {
					case u, ok := <-updates:
						if !ok {
							return
						}
						handle(u)
					default:
						return
					}
				}
			}
		}
	}()
	opts := append(append(base, remote.WithProgress(updates)), extra...)
	err := remote.Write(ref, img, opts...)
	close(stop)
	<-done
	if err != nil {
		return registryError(err, ReasonInvalidImage, "pushing "+ref.String())
	}
	rep.send(Progress{Phase: PhasePush, Layers: layers, TotalLayers: layers, Bytes: last.Total, TotalBytes: last.Total})
	return nil
}

// blobLayer is the layer of the enclave's manifests and signature, held
// in memory: a few small files.
type blobLayer struct {
	compressed, uncompressed []byte
	digest, diffID           v1.Hash
	mediaType                types.MediaType
}

var _ v1.Layer = (*blobLayer)(nil)

// newLayer gzips a tar. compress/gzip writes no time or name in its
// header, so the same tar gives the same layer digest with the same Go.
func newLayer(tar []byte, mt types.MediaType) (*blobLayer, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tar); err != nil {
		return nil, fmt.Errorf("compressing the enclave layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the enclave layer: %w", err)
	}
	l := &blobLayer{compressed: b.Bytes(), uncompressed: tar, mediaType: mt}
	if l.digest, _, err = v1.SHA256(bytes.NewReader(l.compressed)); err != nil {
		return nil, err
	}
	if l.diffID, _, err = v1.SHA256(bytes.NewReader(tar)); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *blobLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *blobLayer) Size() (int64, error)     { return int64(len(l.compressed)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) {
	return l.mediaType, nil
}
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}
