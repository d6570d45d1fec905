package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// liveClient returns the server side of a websocket and the connection a
// test reads it from; the test decides when that connection is read.
func liveClient(t *testing.T) (*client, *websocket.Conn) {
	t.Helper()
	clients := make(chan *client, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := &websocket.Upgrader{WriteBufferPool: new(sync.Pool)}
		conn, out, err := upgradeSend(u, w, r)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			close(clients)
			return
		}
		clients <- newClient(conn, out)
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

// numbered is frame i of a test: its number, padded to size bytes.
func numbered(i, size int) string {
	text := fmt.Sprintf(`{"seq":%d}`, i)
	return text + strings.Repeat(" ", max(size-len(text), 0))
}

// queued reports whether c has frames its socket did not take.
func queued(c *client) bool {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return len(c.out.queue) > 0 || c.out.draining
}

// TestClientWritesFramesInOrder sends a client that does not read yet more
// than its socket holds, so that the rest queues, then reads every frame,
// in sequence.
func TestClientWritesFramesInOrder(t *testing.T) {
	c, conn := liveClient(t)
	const n, size = clientQueue - 1, 128 << 10
	for i := range n {
		c.send(prepare([]byte(numbered(i, size))))
	}
	if !queued(c) {
		t.Fatalf("%d frames of %d bytes all fit the socket; the test wants some queued", n, size)
	}
	for i := range n {
		got, err := readText(t, conn)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := numbered(i, size); got != want {
			t.Fatalf("frame %d = %.20s, want %.20s", i, got, want)
		}
	}

	// A frame sent once the queue is written goes out as well.
	c.send(prepare([]byte(`{"seq":"last"}`)))
	if got, err := readText(t, conn); err != nil || got != `{"seq":"last"}` {
		t.Fatalf("frame after the queue = %q, %v", got, err)
	}
}

// TestSlowClientGetsResync sends a client that does not read more than
// its socket and its queue hold: it gets frames in sequence, then a
// resync, then the connection closes.
func TestSlowClientGetsResync(t *testing.T) {
	c, conn := liveClient(t)
	const n, size = 4 * clientQueue, 64 << 10
	for i := range n {
		c.send(prepare([]byte(numbered(i, size))))
	}
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
		t.Fatalf("last message = %.40q, want a resync", got[max(len(got)-1, 0):])
	}
	for i, text := range got[:len(got)-1] {
		if want := numbered(i, size); text != want {
			t.Fatalf("frame %d = %.20s, want %.20s", i, text, want)
		}
	}
	if len(got)-1 == n {
		t.Errorf("all %d frames arrived before the resync, want the queue cut off", n)
	}
}

// TestSendWithoutSocket writes through a connection that is no socket (as
// TLS is): every frame queues, and the queue's goroutine writes them all.
func TestSendWithoutSocket(t *testing.T) {
	server, peer := net.Pipe()
	t.Cleanup(func() { server.Close(); peer.Close() })
	out := newSendConn(server)
	const n = 10
	for i := range n {
		out.send(prepare([]byte(numbered(i, 0))))
	}
	var got strings.Builder
	for got.Len() < n*len(prepare([]byte(numbered(0, 0)))) {
		buf := make([]byte, 64)
		peer.SetReadDeadline(time.Now().Add(30 * time.Second))
		m, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", got.Len(), err)
		}
		got.Write(buf[:m])
	}
	var want strings.Builder
	for i := range n {
		want.Write(prepare([]byte(numbered(i, 0))))
	}
	if got.String() != want.String() {
		t.Errorf("written %q, want %q", got.String(), want.String())
	}
}

// TestSendDoesNotAllocate sends frames to a real TCP connection: a frame
// must cost a client no allocation, since ten thousand clients' garbage is
// collected by scanning as many goroutines' stacks.
func TestSendDoesNotAllocate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		peer, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, peer)
			peer.Close()
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	out := newSendConn(nc)
	msg := prepare([]byte(`{"seq":1}`))
	allocs := testing.AllocsPerRun(100, func() { out.send(msg) })
	if allocs != 0 {
		t.Errorf("%.1f allocations a frame, want 0", allocs)
	}
}

// TestPrepare checks the frame header for each of RFC 6455's three
// lengths of payload length.
func TestPrepare(t *testing.T) {
	tests := []struct {
		size int
		head string
	}{
		{0, "\x81\x00"},
		{125, "\x81\x7d"},
		{126, "\x81\x7e\x00\x7e"},
		{1<<16 - 1, "\x81\x7e\xff\xff"},
		{1 << 16, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"},
	}
	for _, tt := range tests {
		data := strings.Repeat("x", tt.size)
		if got, want := string(prepare([]byte(data))), tt.head+data; got != want {
			t.Errorf("size %d: header %q, want %q", tt.size, got[:min(10, len(got))], tt.head)
		}
	}
}

// TestCredentialsHoldNoResponse checks that what a websocket client keeps
// of its request does not reach the response writer, through the body
// limit's reader, and with it net/http's buffers of the connection.
func TestCredentialsHoldNoResponse(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/live?token=x", nil)
	r.Header.Set("Authorization", "Bearer x")
	r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
	got := credentials(r)
	if got.Body != http.NoBody || got.GetBody != nil {
		t.Errorf("body = %T, want http.NoBody", got.Body)
	}
	if got.Header.Get("Authorization") != "Bearer x" || got.URL.Query().Get("token") != "x" {
		t.Errorf("credentials lost: header %v, query %v", got.Header, got.URL.Query())
	}
	if r.Body == http.NoBody {
		t.Error("the handler's request was changed")
	}
}

// TestSubscribeProblemNamesTheField checks what a client is told about a
// message it sent that is not a subscribe.
func TestSubscribeProblemNamesTheField(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{`{"type":"subscribe","view":{},"since":-5}`, "since must be a sequence number"},
		{`{"type":"subscribe","view":{"period":7}}`, "view must be an object"},
		{`{"type":5}`, "type must be a string"},
		{`subscribe`, "not a JSON object"},
		{`{"type":"hello"}`, `send {"type":"subscribe"`},
	} {
		var msg subscribeMsg
		got := subscribeProblem(json.Unmarshal([]byte(c.msg), &msg))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want it to start with %q", c.msg, got, c.want)
		}
	}
}
