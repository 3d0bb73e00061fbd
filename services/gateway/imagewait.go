package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/cloister-cc/cloister/libs/errs"
	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
)

// maxImageWait bounds GET image's ?wait: below the proxies' and clients'
// usual idle timeouts.
const maxImageWait = 60 * time.Second

// imageWaits wakes the requests waiting for an image to change (GET
// .../images/{id}?wait=...&after=...) when one of the image converter's
// events about it arrives, so that `image convert --wait` follows a
// conversion as it happens instead of polling.
type imageWaits struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{} // by image id
}

// wait returns a channel closed at the next event about image id, and a
// function to call when no longer waiting.
func (w *imageWaits) wait(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	if w.waiters == nil {
		w.waiters = map[string][]chan struct{}{}
	}
	w.waiters[id] = append(w.waiters[id], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.waiters[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.waiters, id)
		} else {
			w.waiters[id] = list
		}
	}
}

// wake wakes every request waiting for image id.
func (w *imageWaits) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.waiters[id] {
		close(ch)
	}
	delete(w.waiters, id)
}

// imageEvents route the image converter's events about an image to wake.
func (g *Gateway) imageEvents() *events.Router {
	r := events.NewRouter()
	wake := func(img *imageconverterv1.Image) error {
		g.imageWaits.wake(img.GetId())
		return nil
	}
	events.On(r, imageconverterv1.ImageConverterServiceName, func(_ context.Context, _ events.Event, m *imageconverterv1.ConversionProgressed) error {
		return wake(m.GetImage())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(_ context.Context, _ events.Event, m *imageconverterv1.ImageConverted) error {
		return wake(m.GetImage())
	})
	events.On(r, imageconverterv1.ImageConverterServiceName, func(_ context.Context, _ events.Event, m *imageconverterv1.ConversionFailed) error {
		return wake(m.GetImage())
	})
	return r
}

// imageWaitParams reads GET image's ?wait (a duration up to maxImageWait)
// and ?after (the updated_at the caller has seen, RFC 3339). Without wait
// there is no waiting.
func imageWaitParams(r *http.Request) (wait time.Duration, after time.Time, err error) {
	q := r.URL.Query()
	if q.Get("wait") == "" {
		if q.Get("after") != "" {
			return 0, time.Time{}, errs.New(errs.Invalid, "after goes with wait: ?wait=30s&after=<the updated_at you have>")
		}
		return 0, time.Time{}, nil
	}
	if wait, err = time.ParseDuration(q.Get("wait")); err != nil || wait <= 0 || wait > maxImageWait {
		return 0, time.Time{}, errs.Newf(errs.Invalid, "wait must be a duration up to %s, such as 30s, not %q", maxImageWait, q.Get("wait"))
	}
	if s := q.Get("after"); s != "" {
		if after, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return 0, time.Time{}, errs.Newf(errs.Invalid, "after must be an image's updated_at (RFC 3339), not %q", s)
		}
	}
	return wait, after, nil
}
