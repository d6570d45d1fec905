package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// liveTenant keeps the live figures' events, and so their view, apart from
// whatever else the server holds, so that a snapshot stays small.
const liveTenant = "bench-live"

// marker is what a delta frame carries for a timed event: its record id.
var marker = []byte(`"record":"bm-`)

// Marks remembers when each marked event was posted.
type Marks struct {
	sent []atomic.Int64 // unix nanoseconds, 0 until posted
}

// NewMarks holds n marks.
func NewMarks(n int) *Marks { return &Marks{sent: make([]atomic.Int64, n)} }

// Posting notes that mark i is being posted now.
func (m *Marks) Posting(i int) { m.sent[i].Store(time.Now().UnixNano()) }

// Clients is a crowd of websocket clients of one view, recording for every
// marked event they see how long after its POST it arrived.
type Clients struct {
	conns    []*websocket.Conn
	Latency  Histogram
	Seen     atomic.Int64 // marks seen, over all clients
	Resyncs  atomic.Int64 // clients the server dropped for lagging
	Failures atomic.Int64 // connections that broke
	wg       sync.WaitGroup
}

// RaiseFileLimit lifts RLIMIT_NOFILE to its hard limit, for ten thousand
// sockets on each side; the server started afterwards inherits it.
func RaiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// Connect opens n clients of the live tenant's today view, 64 at a time,
// each subscribed and past its snapshot. Connections come from 127.0.0.2
// and up, so that many clients do not exhaust one address's ports.
func Connect(ctx context.Context, s *Server, n int) (*Clients, error) {
	c := &Clients{conns: make([]*websocket.Conn, n)}
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/live"
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				conn, err := subscribe(ctx, url, i)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("client %d: %w", i, err))
					mu.Unlock()
					return
				}
				c.conns[i] = conn
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		c.Close()
		return nil, firstErr
	}
	return c, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func subscribe(ctx context.Context, url string, i int) (*websocket.Conn, error) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, byte(i/50000), byte(2+i%200))}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 1 << 10,
		NetDialContext: (&net.Dialer{LocalAddr: local}).DialContext}
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	sub := fmt.Sprintf(`{"type":"subscribe","view":{"period":"today","tz":"UTC","tenant":%q}}`, liveTenant)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(sub)); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, data, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if !bytes.Contains(data, []byte(`"type":"snapshot"`)) {
		conn.Close()
		return nil, fmt.Errorf("first frame is not a snapshot: %.80s", data)
	}
	conn.SetReadDeadline(time.Time{})
	return conn, nil
}

// Listen starts one reading goroutine per client; each frame is scanned
// for marks without decoding the JSON, which keeps the clients' side cheap
// next to the server's on a shared 2-core machine.
func (c *Clients) Listen(marks *Marks) {
	for _, conn := range c.conns {
		c.wg.Go(func() {
			var buf bytes.Buffer
			for {
				_, r, err := conn.NextReader()
				if err != nil {
					c.Failures.Add(1)
					return
				}
				buf.Reset()
				if _, err := buf.ReadFrom(r); err != nil {
					c.Failures.Add(1)
					return
				}
				c.scan(buf.Bytes(), marks, time.Now().UnixNano())
			}
		})
	}
}

func (c *Clients) scan(frame []byte, marks *Marks, now int64) {
	if len(frame) < 64 && bytes.Contains(frame, []byte(`"resync"`)) {
		c.Resyncs.Add(1)
		return
	}
	for {
		i := bytes.Index(frame, marker)
		if i < 0 {
			return
		}
		frame = frame[i+len(marker):]
		end := bytes.IndexByte(frame, '"')
		n, err := strconv.Atoi(string(frame[:max(end, 0)]))
		if err != nil || n < 0 || n >= len(marks.sent) {
			continue
		}
		if sent := marks.sent[n].Load(); sent > 0 {
			c.Latency.Record(time.Duration(now - sent))
			c.Seen.Add(1)
		}
	}
}

// Close closes every connection and waits for the readers.
func (c *Clients) Close() {
	for _, conn := range c.conns {
		if conn != nil {
			conn.Close()
		}
	}
	c.wg.Wait()
}
