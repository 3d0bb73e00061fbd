package kv

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
)

// A record encodes as json.Marshal encodes it, whatever it holds.
func TestRecordEncoding(t *testing.T) {
	value, err := json.Marshal(map[string]any{"name": "a \"quoted\" <name>", "n": 3, "list": []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	msg := outboxMsg{ID: "id-1", Subject: "events.x", Header: nats.Header{"Nats-Msg-Id": {"id-1"}}, Data: []byte{0, 1, 0xff}, Hint: "h"}
	for _, r := range []record{
		{},
		{recordValue: recordValue{Value: value, Version: 1<<64 - 1}},
		{recordValue: recordValue{Version: 7, Deleted: true}},
		{recordValue: recordValue{Value: value, Version: 2}, Outbox: []outboxMsg{msg, {ID: "id-2", Subject: "events.y"}}},
		{recordValue: recordValue{Version: 3, Deleted: true}, Outbox: []outboxMsg{msg}},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.encode()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("encode() = %s, %v; want %s", got, err, want)
		}
	}
}
