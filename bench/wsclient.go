package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"
)

// wsConn is one websocket client as cheap as a client that reads every
// frame can be: the handshake and the subscription are done on a Go
// connection, then its socket leaves the Go runtime's poller and is read by
// an epoll loop (pollLoop) with one read system call per wakeup and no
// goroutine of its own. Frames are taken apart here, not by a library: a
// server frame is a two to ten byte header and an unmasked payload.
type wsConn struct {
	fd      int
	pending []byte // the start of a frame that has not fully arrived
	seq     uint64 // the last sequence number seen
	done    bool   // closed, broken or told to resync
}

// wsGUID is the fixed key suffix of RFC 6455's handshake.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Websocket opcodes (RFC 6455, section 5.2).
const (
	opText  = 1
	opClose = 8
	opPing  = 9
	opPong  = 10
)

// dialLive opens a websocket to addr's /v1/live from local, subscribes it
// to view and reads its snapshot, then hands its socket over: the returned
// wsConn owns a duplicate of the descriptor, and the Go connection is
// closed (which takes it out of the runtime's poller without ending the
// TCP connection, since the duplicate keeps it open).
func dialLive(ctx context.Context, addr string, local net.Addr, view string) (*wsConn, error) {
	d := net.Dialer{LocalAddr: local}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute))
	rest, err := handshake(nc, addr)
	if err != nil {
		return nil, err
	}
	sub := fmt.Sprintf(`{"type":"subscribe","view":%s}`, view)
	if _, err := nc.Write(clientFrame(opText, []byte(sub))); err != nil {
		return nil, err
	}
	c := &wsConn{pending: rest}
	if err := c.readSnapshot(nc); err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	if c.fd, err = dupSocket(nc); err != nil {
		return nil, err
	}
	return c, nil
}

// handshake upgrades nc and returns what the server sent after its answer.
func handshake(nc net.Conn, host string) ([]byte, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET /v1/live HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		return nil, err
	}
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := nc.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if head, rest, ok := bytes.Cut(buf, []byte("\r\n\r\n")); ok {
			sum := sha1.Sum([]byte(key + wsGUID))
			accept := "Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:])
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) || !bytes.Contains(head, []byte(accept)) {
				return nil, fmt.Errorf("handshake answered %.80q", head)
			}
			return bytes.Clone(rest), nil
		}
		if err != nil {
			return nil, fmt.Errorf("read handshake: %w", err)
		}
	}
}

// readSnapshot reads from nc until the first frame, which must be a
// snapshot, and keeps its sequence number.
func (c *wsConn) readSnapshot(nc net.Conn) error {
	chunk := make([]byte, 64<<10)
	for {
		op, payload, n, err := nextFrame(c.pending)
		if err != nil {
			return err
		}
		if n > 0 {
			c.pending = bytes.Clone(c.pending[n:])
			if op != opText || !bytes.Equal(frameType(payload), []byte("snapshot")) {
				return fmt.Errorf("first frame is not a snapshot: %.80s", payload)
			}
			seq, ok := frameSeq(payload)
			if !ok {
				return fmt.Errorf("snapshot without seq: %.80s", payload)
			}
			c.seq = seq
			return nil
		}
		m, err := nc.Read(chunk)
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		c.pending = append(c.pending, chunk[:m]...)
	}
}

// dupSocket returns a duplicate of nc's descriptor, non-blocking like it.
func dupSocket(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) }); err != nil {
		return 0, err
	}
	if dupErr != nil {
		return 0, dupErr
	}
	syscall.CloseOnExec(fd)
	return fd, nil
}

// nextFrame parses the frame at the start of data. It returns n 0 when the
// frame has not fully arrived. A server's frame is never masked, and this
// server never fragments a message.
func nextFrame(data []byte) (op int, payload []byte, n int, err error) {
	if len(data) < 2 {
		return 0, nil, 0, nil
	}
	if data[0]&0x80 == 0 || data[1]&0x80 != 0 {
		return 0, nil, 0, fmt.Errorf("fragmented or masked frame: % x", data[:2])
	}
	op = int(data[0] & 0x0f)
	size, head := uint64(data[1]&0x7f), 2
	switch size {
	case 126:
		if len(data) < 4 {
			return 0, nil, 0, nil
		}
		size, head = uint64(binary.BigEndian.Uint16(data[2:])), 4
	case 127:
		if len(data) < 10 {
			return 0, nil, 0, nil
		}
		size, head = binary.BigEndian.Uint64(data[2:]), 10
	}
	if size > 1<<30 {
		return 0, nil, 0, fmt.Errorf("frame of %d bytes", size)
	}
	end := head + int(size)
	if len(data) < end {
		return 0, nil, 0, nil
	}
	return op, data[head:end], end, nil
}

// clientFrame builds a client's frame: final, masked as RFC 6455 requires,
// of a payload under 64 KiB.
func clientFrame(op int, payload []byte) []byte {
	var mask [4]byte
	rand.Read(mask[:])
	frame := make([]byte, 0, 6+len(payload))
	if len(payload) < 126 {
		frame = append(frame, 0x80|byte(op), 0x80|byte(len(payload)))
	} else {
		frame = append(frame, 0x80|byte(op), 0x80|126, byte(len(payload)>>8), byte(len(payload)))
	}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	return frame
}

// frameType returns the value of a message's "type" key, found without
// decoding: a key's quotes cannot stand unescaped inside a JSON string.
func frameType(msg []byte) []byte {
	key := []byte(`"type":"`)
	i := bytes.Index(msg, key)
	if i < 0 {
		return nil
	}
	rest := msg[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil
	}
	return rest[:end]
}

// frameSeq returns the value of a message's "seq" key.
func frameSeq(msg []byte) (uint64, bool) {
	key := []byte(`"seq":`)
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(key):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return seq, err == nil
}
