package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/cloister-cc/cloister/libs/events"
	imageconverterv1 "github.com/cloister-cc/cloister/libs/gen/cloister/imageconverter/v1"
	"github.com/cloister-cc/cloister/libs/testkit"
)

// TestImageLongPoll: GET image with ?wait&after answers at once when the
// image is newer than after, when the converter reports on the image
// (here its event, published as the converter would), or when wait has
// passed; malformed parameters are a 400 naming them.
func TestImageLongPoll(t *testing.T) {
	s := newStack(t, memory(t))
	_, admin := s.user("admin@example.com")
	acct := s.account(admin, "A")
	base := "/v1/accounts/" + acct
	app := map[string]any{"name": "hello", "input_image": "registry.example.com:5000/samples/hello:1", "output_image": "registry.example.com:5000/samples/hello-sgx"}
	if r := do(t, s.srv, "POST", base+"/apps", admin, app); r.status != 201 {
		t.Fatalf("creating the app = %d %s", r.status, r.body)
	}
	var r response
	testkit.EventuallyMsg(t, 20*time.Second, func() bool { // the signing key comes with AccountCreated
		r = do(t, s.srv, "POST", base+"/images", admin, map[string]string{"app": "hello", "tag": "1"})
		return r.status == 202
	}, func() string { return fmt.Sprintf("converting never accepted: %d %s", r.status, r.body) })
	var img struct {
		ID        string
		Status    string
		UpdatedAt time.Time `json:"updated_at"`
	}
	r.decode(t, &img)
	path := base + "/images/" + img.ID

	for _, q := range []string{"wait=soon", "wait=2m", "wait=0s", "after=2026-01-01T00:00:00Z", "wait=5s&after=yesterday"} {
		if r := do(t, s.srv, "GET", path+"?"+q, admin, nil); r.status != 400 {
			t.Errorf("GET image?%s = %d %s, want 400", q, r.status, r.body)
		}
	}

	// poll asks with a client that gives up long before wait: an answer
	// means the server did not wait it out.
	poll := func(wait string, after time.Time) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		q := url.Values{"wait": {wait}, "after": {after.Format(time.RFC3339Nano)}}
		req, _ := http.NewRequestWithContext(ctx, "GET", s.srv.URL+path+"?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var got struct {
			ID string
		}
		_ = json.NewDecoder(resp.Body).Decode(&got)
		if got.ID != img.ID {
			return resp.StatusCode, fmt.Errorf("the answer is not the image: %+v", got)
		}
		return resp.StatusCode, nil
	}
	// Newer than what the caller has seen: at once.
	if status, err := poll("60s", img.UpdatedAt.Add(-time.Second)); err != nil || status != 200 {
		t.Fatalf("a long poll for an image newer than after = %d, %v; want an answer at once", status, err)
	}
	// Nothing newer: the answer waits for the converter's word on the
	// image, published until the waiting request has it.
	answered := make(chan error, 1)
	go func() {
		status, err := poll("60s", img.UpdatedAt)
		if err == nil && status != 200 {
			err = fmt.Errorf("status %d", status)
		}
		answered <- err
	}()
	js := s.st.JetStream()
	event := &imageconverterv1.ConversionProgressed{Image: &imageconverterv1.Image{Id: img.ID, AccountId: acct, Status: "converting"}}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-answered:
			if err != nil {
				t.Fatalf("the waiting long poll: %v", err)
			}
			done = true
		case <-tick.C:
			msg, _, err := events.NewMessage(context.Background(), events.Subject("imageconverter", event), "imageconverter", acct, event)
			if err != nil {
				t.Fatal(err)
			}
			if err := events.Publish(context.Background(), js, msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	// No word at all: the answer comes when wait has passed, not before
	// (a lower bound: the server waited; no upper one).
	start := time.Now()
	if status, err := poll("1s", img.UpdatedAt); err != nil || status != 200 {
		t.Fatalf("a long poll that waits it out = %d, %v", status, err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("a long poll with nothing new answered after %v, before its wait of 1s", waited)
	}
}
