package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
// marked event they see how long after its POST it arrived. They run in
// the server's machine, so they are as cheap as a client that reads every
// frame can be (see wsConn): a few epoll loops, no goroutine per client.
type Clients struct {
	conns   []*wsConn
	loops   []int // epoll descriptors, conns[i] in loops[i%len(loops)]
	closing atomic.Bool
	wg      sync.WaitGroup

	Latency Histogram
	Seen    atomic.Int64 // marks seen, over all clients
	Frames  atomic.Int64 // delta frames read, over all clients
	Bytes   atomic.Int64 // their payload bytes
	Gaps    atomic.Int64 // deltas whose seq did not follow the one before
	Resyncs atomic.Int64 // clients the server dropped for lagging
	Broken  atomic.Int64 // connections that broke or were closed by the server
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
	c := &Clients{conns: make([]*wsConn, n)}
	addr := strings.TrimPrefix(s.URL, "http://")
	view := fmt.Sprintf(`{"period":"today","tz":"UTC","tenant":%q}`, liveTenant)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				local := &net.TCPAddr{IP: net.IPv4(127, 0, byte(i/50000), byte(2+i%200))}
				conn, err := dialLive(ctx, addr, local, view)
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

// Listen starts one epoll loop per core, each reading its share of the
// clients; every frame is checked (its sequence follows the one before)
// and scanned for marks without decoding the JSON.
func (c *Clients) Listen(marks *Marks) error {
	for range runtime.GOMAXPROCS(0) {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return fmt.Errorf("epoll: %w", err)
		}
		c.loops = append(c.loops, epfd)
	}
	for i, w := range c.conns {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(i)}
		if err := syscall.EpollCtl(c.loops[i%len(c.loops)], syscall.EPOLL_CTL_ADD, w.fd, &ev); err != nil {
			return fmt.Errorf("epoll add: %w", err)
		}
	}
	for _, epfd := range c.loops {
		c.wg.Go(func() { c.poll(epfd, marks) })
	}
	return nil
}

// poll reads the clients of one epoll descriptor until Close.
func (c *Clients) poll(epfd int, marks *Marks) {
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, 256<<10)
	for !c.closing.Load() {
		n, err := syscall.EpollWait(epfd, events, 100)
		if err != nil {
			continue // EINTR
		}
		for _, ev := range events[:n] {
			c.read(c.conns[ev.Fd], buf, marks)
		}
	}
}

// read takes what one client's socket holds and handles every whole frame
// in it; the level-triggered epoll reports a socket again while it holds
// more than one read took.
func (c *Clients) read(w *wsConn, buf []byte, marks *Marks) {
	if w.done {
		return
	}
	n, err := syscall.Read(w.fd, buf)
	if err == syscall.EAGAIN {
		return
	}
	if n <= 0 {
		c.fail(w)
		return
	}
	c.take(w, buf[:n], marks, time.Now().UnixNano())
}

// take handles the whole frames of what was read, keeping the start of a
// frame that has not fully arrived.
func (c *Clients) take(w *wsConn, data []byte, marks *Marks, now int64) {
	if len(w.pending) > 0 {
		w.pending = append(w.pending, data...)
		data = w.pending
	}
	for !w.done {
		op, payload, size, err := nextFrame(data)
		if err != nil {
			c.fail(w)
			return
		}
		if size == 0 {
			break
		}
		c.handle(w, op, payload, marks, now)
		data = data[size:]
	}
	w.pending = append(w.pending[:0], data...)
}

// handle checks one frame: a delta's seq follows the one before, a
// snapshot (the view's bounds moved) sets it anew.
func (c *Clients) handle(w *wsConn, op int, payload []byte, marks *Marks, now int64) {
	switch op {
	case opPing:
		syscall.Write(w.fd, clientFrame(opPong, payload))
		return
	case opClose:
		c.fail(w)
		return
	case opText:
	default:
		return
	}
	switch typ := frameType(payload); string(typ) {
	case "delta":
		seq, ok := frameSeq(payload)
		if !ok || seq != w.seq+1 {
			c.Gaps.Add(1)
		}
		w.seq = seq
		c.Frames.Add(1)
		c.Bytes.Add(int64(len(payload)))
		c.scan(payload, marks, now)
	case "snapshot":
		w.seq, _ = frameSeq(payload)
	case "resync":
		c.Resyncs.Add(1)
		w.done = true
	}
}

// fail counts a broken client and stops reading it.
func (c *Clients) fail(w *wsConn) {
	c.Broken.Add(1)
	w.done = true
}

func (c *Clients) scan(frame []byte, marks *Marks, now int64) {
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

// Close stops the loops and closes every connection.
func (c *Clients) Close() {
	c.closing.Store(true)
	c.wg.Wait()
	for _, epfd := range c.loops {
		syscall.Close(epfd)
	}
	for _, w := range c.conns {
		if w != nil {
			syscall.Close(w.fd)
		}
	}
}
