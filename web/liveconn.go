package web

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// batchConn is a websocket client's network connection whose frames can be
// gathered: between hold and flush, what gorilla writes is kept, and flush
// sends all of it with one write deadline and one writev. A client that has
// fallen behind so catches up at the cost of one system call per batch
// instead of one per frame. Outside a batch, writes (the handshake, the
// control frames gorilla answers from the reading goroutine) go straight
// through.
//
// A batch keeps the slices it is given without copying them. That is safe
// for what the client writes in a batch, prepared frames, which gorilla
// writes from the frame it built once and never changes, and for control
// frames, which gorilla builds afresh for each call. A message written with
// NextWriter or WriteMessage goes out of gorilla's reused write buffer and
// must not be written inside a batch.
type batchConn struct {
	net.Conn

	mu       sync.Mutex
	held     bool
	bufs     net.Buffers
	deadline time.Time // asked for the batch
	applied  time.Time // in force on Conn; zero for none
}

// deadlineSlack is how much earlier than asked a write deadline may be left
// in force: a client sent a frame every few milliseconds would otherwise
// move a runtime timer for each, and a write cut off after 9 seconds rather
// than 10 is bounded as well.
const deadlineSlack = time.Second

// hold starts a batch: writes are kept until flush.
func (b *batchConn) hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = true
}

// flush writes what the batch kept, under the last write deadline set in
// it, and ends the batch.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = false
	if len(b.bufs) == 0 {
		return nil
	}
	if err := b.setDeadline(b.deadline); err != nil {
		return err
	}
	bufs := b.bufs // WriteTo consumes its receiver
	_, err := bufs.WriteTo(b.Conn)
	clear(b.bufs) // the frames are the view's ring's to keep, not the batch's
	b.bufs = b.bufs[:0]
	return err
}

// Write keeps p in the batch, or writes it when there is none.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held {
		b.bufs = append(b.bufs, p)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

// SetWriteDeadline sets the deadline of the batch's one write, or of the
// next write when there is no batch.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held {
		b.deadline = t
		return nil
	}
	return b.setDeadline(t)
}

// setDeadline puts t in force, unless the deadline in force is earlier by
// less than deadlineSlack; the caller holds mu.
func (b *batchConn) setDeadline(t time.Time) error {
	if !b.applied.IsZero() && !t.IsZero() && !t.Before(b.applied) && t.Sub(b.applied) < deadlineSlack {
		return nil
	}
	b.applied = t
	return b.Conn.SetWriteDeadline(t)
}

// batchHijacker hands the upgrader the hijacked connection wrapped in a
// batchConn, since gorilla takes the connection only from Hijack.
type batchHijacker struct {
	http.ResponseWriter
	conn *batchConn
}

func (bh *batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(bh.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	bh.conn = &batchConn{Conn: nc}
	return bh.conn, rw, nil
}

// upgradeBatched upgrades the request to a websocket whose frames can be
// written in batches through the returned batchConn.
func upgradeBatched(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request) (*websocket.Conn, *batchConn, error) {
	bh := &batchHijacker{ResponseWriter: w}
	conn, err := u.Upgrade(bh, r, nil)
	if err != nil {
		return nil, nil, err
	}
	return conn, bh.conn, nil
}
