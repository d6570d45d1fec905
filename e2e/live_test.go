package e2e

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frame is a message of /v1/live.
type frame struct {
	Type         string            `json:"type"`
	Seq          uint64            `json:"seq"`
	Report       json.RawMessage   `json:"report"`
	Users        []json.RawMessage `json:"users"`
	Transactions []struct {
		Record string `json:"record"`
	} `json:"transactions"`
}

func dialLive(t *testing.T, s *server) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/v1/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readFrame(t *testing.T, conn *websocket.Conn) frame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var f frame
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatalf("read live frame: %v", err)
	}
	return f
}

// TestLiveDeltaMatchesReport posts an event and checks that a subscribed
// client sees its delta, with the figures a report asked right after has.
func TestLiveDeltaMatchesReport(t *testing.T) {
	s := startServer(t, "")
	conn := dialLive(t, s)
	view := map[string]string{"period": "today", "tz": "UTC"}
	if err := conn.WriteJSON(map[string]any{"type": "subscribe", "view": view}); err != nil {
		t.Fatal(err)
	}
	snap := readFrame(t, conn)
	if snap.Type != "snapshot" {
		t.Fatalf("first frame = %q, want snapshot", snap.Type)
	}

	event := map[string]any{"id": "evt-live-1", "user": "u-17", "user_name": "Ana Ruiz", "entity": "opportunity",
		"record": "OPP-42", "record_name": "Cancity renewal", "action": "updated", "fields": []string{"stage"},
		"at": time.Now().UTC().Format(time.RFC3339Nano)}
	if code := s.do("POST", "/v1/events", "", mustJSON(t, []any{event}), nil); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}
	delta := readFrame(t, conn)
	if delta.Type != "delta" || delta.Seq != snap.Seq+1 {
		t.Fatalf("frame = %s seq %d, want delta seq %d", delta.Type, delta.Seq, snap.Seq+1)
	}
	if len(delta.Transactions) != 1 || delta.Transactions[0].Record != "OPP-42" {
		t.Errorf("delta transactions = %+v, want OPP-42", delta.Transactions)
	}

	var rep struct {
		Users []json.RawMessage `json:"users"`
	}
	s.do("GET", "/v1/report?period=today&tz=UTC", "", nil, &rep)
	if len(delta.Users) != 1 {
		t.Fatalf("delta has %d users, want 1", len(delta.Users))
	}
	var fromDelta, fromReport map[string]any
	json.Unmarshal(delta.Users[0], &fromDelta)
	for _, u := range rep.Users {
		var row map[string]any
		json.Unmarshal(u, &row)
		if row["id"] == fromDelta["id"] {
			fromReport = row
		}
	}
	if fromDelta["id"] != "api:u-17" {
		t.Errorf("delta row id = %v, want api:u-17 (an unmapped user)", fromDelta["id"])
	}
	if !reflect.DeepEqual(fromDelta, fromReport) {
		t.Errorf("delta row = %v\nreport row = %v", fromDelta, fromReport)
	}
}

// TestLiveResume reconnects with the last sequence seen and gets the
// deltas missed meanwhile; an unknown sequence gets a resync.
func TestLiveResume(t *testing.T) {
	s := startServer(t, "")
	view := map[string]string{"period": "today"}
	first := dialLive(t, s)
	first.WriteJSON(map[string]any{"type": "subscribe", "view": view})
	snap := readFrame(t, first)
	first.Close()

	// A second client keeps the view alive and sees each delta.
	watcher := dialLive(t, s)
	watcher.WriteJSON(map[string]any{"type": "subscribe", "view": view})
	readFrame(t, watcher)
	for i, rec := range []string{"R-1", "R-2"} {
		ev := map[string]any{"user": "u-1", "entity": "lead", "record": rec, "action": "created",
			"at": time.Now().UTC().Add(-time.Duration(i) * time.Second).Format(time.RFC3339Nano)}
		s.do("POST", "/v1/events", "", mustJSON(t, []any{ev}), nil)
		readFrame(t, watcher)
	}

	again := dialLive(t, s)
	again.WriteJSON(map[string]any{"type": "subscribe", "view": view, "since": snap.Seq})
	if f := readFrame(t, again); f.Type != "resumed" || f.Seq != snap.Seq+2 {
		t.Fatalf("resume answer = %s seq %d, want resumed seq %d", f.Type, f.Seq, snap.Seq+2)
	}
	var records []string
	for range 2 {
		f := readFrame(t, again)
		for _, tx := range f.Transactions {
			records = append(records, tx.Record)
		}
	}
	if !reflect.DeepEqual(records, []string{"R-1", "R-2"}) {
		t.Errorf("resumed deltas carry %v, want [R-1 R-2]", records)
	}

	stale := dialLive(t, s)
	stale.WriteJSON(map[string]any{"type": "subscribe", "view": view, "since": snap.Seq + 100})
	if f := readFrame(t, stale); f.Type != "resync" {
		t.Errorf("resume from a sequence the view never had = %s, want resync", f.Type)
	}
}
