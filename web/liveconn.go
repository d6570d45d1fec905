package web

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// sendConn is a websocket client's network connection, written without a
// goroutine of its own. A frame sent to a connection with nothing queued
// is written at once by the sender, with one non-blocking system call; only
// what the socket does not take (a client that has fallen behind) is
// queued, and then a goroutine writes the queue, every frame that waits in
// it in one writev under one write deadline, and exits once it is empty.
// Ten thousand clients of a view so cost ten thousand writes a frame, and
// no goroutine wakeup, deadline or timer each.
//
// Everything written goes through the queue's order: the frames the hub
// sends, and what gorilla writes through Write (the handshake's answer,
// pings, pongs, the close frame). The queue keeps the slices it is given
// without copying them: the hub's frames are built once and never changed,
// and gorilla builds each control frame afresh. A message written with
// gorilla's NextWriter or WriteMessage goes out of its reused write buffer
// and must not be written to a sendConn.
type sendConn struct {
	net.Conn
	raw  syscall.RawConn // nil when Conn is no socket (TLS): every write queues
	tryP []byte          // what tryWrite writes; a field, so tryFn captures nothing
	tryN int
	tryE error
	try  func(fd uintptr) bool

	mu       sync.Mutex
	queue    net.Buffers // bytes not yet written, in order
	spare    net.Buffers // the queue's other backing array
	out      net.Buffers // what drain is writing: WriteTo consumes it
	frames   int         // hub frames in queue
	draining bool        // a goroutine owns the writing of queue
	dropped  bool        // queued too much: resync, then close
	err      error       // the first write error; the connection is closed
}

func newSendConn(nc net.Conn) *sendConn {
	s := &sendConn{Conn: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		s.raw, _ = sc.SyscallConn()
	}
	s.try = s.tryFn
	return s
}

// errDropped ends a connection that fell more than clientQueue frames
// behind.
var errDropped = errors.New("websocket client fell behind")

// send queues or writes one frame of the hub's; a client more than
// clientQueue frames behind is sent resyncMsg and closed instead.
func (s *sendConn) send(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.dropped {
		return
	}
	if s.frames >= clientQueue {
		s.dropped = true
		s.queue = append(s.queue, resyncMsg)
		return
	}
	if s.write(frame) {
		s.frames++
	}
}

// Write queues or writes p, for gorilla: what is queued counts as written,
// and an error of the queue's goroutine is reported by the next Write.
func (s *sendConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.write(p)
	return len(p), nil
}

// SetWriteDeadline is a no-op: a write by the sender never blocks, and
// the queue's goroutine sets its own deadline.
func (s *sendConn) SetWriteDeadline(time.Time) error { return nil }

// write writes p now when nothing waits before it and the socket takes it
// whole; else it queues what is left of p and makes sure a goroutine
// writes the queue. It reports whether p was queued; the caller holds mu.
func (s *sendConn) write(p []byte) (queued bool) {
	if len(s.queue) == 0 && !s.draining && s.raw != nil {
		n, err := s.tryWrite(p)
		if err != nil {
			s.fail(err)
			return false
		}
		if n == len(p) {
			return false
		}
		p = p[n:]
	}
	s.queue = append(s.queue, p)
	if !s.draining {
		s.draining = true
		go s.drain()
	}
	return true
}

// tryWrite writes what the socket takes of p without waiting; the caller
// holds mu.
func (s *sendConn) tryWrite(p []byte) (int, error) {
	s.tryP, s.tryN, s.tryE = p, 0, nil
	if err := s.raw.Write(s.try); err != nil {
		return 0, err
	}
	s.tryP = nil
	if s.tryE == syscall.EAGAIN {
		return 0, nil
	}
	return s.tryN, s.tryE
}

func (s *sendConn) tryFn(fd uintptr) bool {
	s.tryN, s.tryE = syscall.Write(int(fd), s.tryP)
	s.tryN = max(s.tryN, 0)
	return true // never wait for the socket: the queue does
}

// drain writes the queue until it is empty, in batches of all that waits.
func (s *sendConn) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) > 0 && s.err == nil {
		batch, wait := s.queue, writeWait
		if s.dropped {
			wait = resyncWait
		}
		s.queue, s.spare, s.frames = s.spare[:0], nil, 0
		s.mu.Unlock()
		s.Conn.SetWriteDeadline(time.Now().Add(wait))
		s.out = batch
		_, err := s.out.WriteTo(s.Conn)
		clear(batch) // the frames are the view's ring's to keep
		s.mu.Lock()
		s.spare = batch[:0]
		if err != nil {
			s.fail(err)
		}
	}
	s.draining = false
	if s.err == nil && s.dropped {
		s.fail(errDropped)
		return
	}
	s.Conn.SetWriteDeadline(time.Time{})
}

// fail keeps the first write error and closes the connection, which ends
// the client's reading goroutine; the caller holds mu.
func (s *sendConn) fail(err error) {
	if s.err == nil {
		s.err = err
		s.queue = nil
		s.Conn.Close()
	}
}

// sendHijacker hands the upgrader the hijacked connection wrapped in a
// sendConn, since gorilla takes the connection only from Hijack.
type sendHijacker struct {
	http.ResponseWriter
	conn *sendConn
}

func (sh *sendHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(sh.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	sh.conn = newSendConn(nc)
	return sh.conn, rw, nil
}

// upgradeSend upgrades the request to a websocket whose frames the hub
// writes through the returned sendConn.
func upgradeSend(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request) (*websocket.Conn, *sendConn, error) {
	sh := &sendHijacker{ResponseWriter: w}
	conn, err := u.Upgrade(sh, r, nil)
	if err != nil {
		return nil, nil, err
	}
	return conn, sh.conn, nil
}
