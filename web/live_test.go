package web

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// liveClient returns the server side of a websocket, with its writer not
// started, and the connection a test reads it from.
func liveClient(t *testing.T) (*client, *websocket.Conn) {
	t.Helper()
	clients := make(chan *client, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := &websocket.Upgrader{WriteBufferPool: new(sync.Pool)}
		conn, batch, err := upgradeBatched(u, w, r)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			close(clients)
			return
		}
		clients <- newClient(conn, batch)
	}))
	t.Cleanup(srv.Close)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, ok := <-clients
	if !ok {
		t.FailNow()
	}
	t.Cleanup(c.close)
	return c, conn
}

func readText(t *testing.T, conn *websocket.Conn) (string, error) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := conn.ReadMessage()
	return string(data), err
}

// TestClientWritesQueuedFramesInOrder queues frames before the writer runs,
// so that it sends them as one batch, and reads every one, in sequence.
func TestClientWritesQueuedFramesInOrder(t *testing.T) {
	c, conn := liveClient(t)
	const n = clientQueue / 2
	for i := range n {
		c.send(prepare(fmt.Appendf(nil, `{"seq":%d}`, i)))
	}
	go c.write()
	for i := range n {
		got, err := readText(t, conn)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := fmt.Sprintf(`{"seq":%d}`, i); got != want {
			t.Fatalf("frame %d = %s, want %s", i, got, want)
		}
	}

	// A frame sent to an idle writer goes out on its own.
	c.send(prepare([]byte(`{"seq":"last"}`)))
	if got, err := readText(t, conn); err != nil || got != `{"seq":"last"}` {
		t.Fatalf("frame after the batch = %q, %v", got, err)
	}
}

// TestSlowClientGetsResync overflows a client's queue: it gets frames in
// sequence, then a resync, then the connection closes.
func TestSlowClientGetsResync(t *testing.T) {
	c, conn := liveClient(t)
	for i := range clientQueue + 1 {
		c.send(prepare(fmt.Appendf(nil, `{"seq":%d}`, i)))
	}
	go c.write()
	var got []string
	for {
		text, err := readText(t, conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the connection stayed open after %d messages", len(got))
		}
		if err != nil {
			break
		}
		got = append(got, text)
	}
	if len(got) == 0 || got[len(got)-1] != `{"type":"resync"}` {
		t.Fatalf("last message = %q, want a resync", got[max(len(got)-1, 0):])
	}
	for i, text := range got[:len(got)-1] {
		if want := fmt.Sprintf(`{"seq":%d}`, i); text != want {
			t.Fatalf("frame %d = %s, want %s", i, text, want)
		}
	}
	if len(got)-1 > clientQueue {
		t.Errorf("%d frames before the resync, want at most the queue's %d", len(got)-1, clientQueue)
	}
}

// deadlineConn records the write deadlines set on it and what is written.
type deadlineConn struct {
	net.Conn
	set     []time.Time
	written string
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.written += string(p)
	return len(p), nil
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

func TestBatchConnDeadline(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	nc := &deadlineConn{}
	b := &batchConn{Conn: nc}
	steps := []struct {
		name    string
		t       time.Time
		applied bool
	}{
		{"first", t0, true},
		{"later within the slack", t0.Add(deadlineSlack / 2), false},
		{"earlier", t0.Add(-time.Millisecond), true},
		{"later past the slack", t0.Add(2 * deadlineSlack), true},
		{"none", time.Time{}, true},
		{"none again", time.Time{}, true},
		{"after none", t0, true},
	}
	for _, s := range steps {
		before := len(nc.set)
		b.SetWriteDeadline(s.t)
		if got := len(nc.set) > before; got != s.applied {
			t.Errorf("%s: applied %v, want %v", s.name, got, s.applied)
		}
	}

	// In a batch, the writes and the last deadline asked for wait for flush.
	nc.set = nil
	b.hold()
	for i, frame := range []string{"one", "two"} {
		b.SetWriteDeadline(t0.Add(time.Duration(10*(i+1)) * deadlineSlack))
		b.Write([]byte(frame))
	}
	if len(nc.set) != 0 || nc.written != "" {
		t.Errorf("inside a batch: deadlines %v and %q applied", nc.set, nc.written)
	}
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	if want := []time.Time{t0.Add(20 * deadlineSlack)}; len(nc.set) != 1 || !nc.set[0].Equal(want[0]) {
		t.Errorf("deadlines at flush = %v, want %v", nc.set, want)
	}
	if nc.written != "onetwo" {
		t.Errorf("written at flush = %q, want onetwo", nc.written)
	}

	// After the batch, writes go straight through again.
	b.Write([]byte("three"))
	if nc.written != "onetwothree" {
		t.Errorf("written after the batch = %q, want onetwothree", nc.written)
	}
}
