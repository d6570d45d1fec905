package bench

import (
	"bytes"
	"testing"
)

// serverFrame is an unmasked frame as a server sends it.
func serverFrame(op int, payload []byte) []byte {
	frame := []byte{0x80 | byte(op)}
	switch {
	case len(payload) < 126:
		frame = append(frame, byte(len(payload)))
	case len(payload) < 1<<16:
		frame = append(frame, 126, byte(len(payload)>>8), byte(len(payload)))
	default:
		frame = append(frame, 127, 0, 0, 0, 0, byte(len(payload)>>24), byte(len(payload)>>16),
			byte(len(payload)>>8), byte(len(payload)))
	}
	return append(frame, payload...)
}

func TestNextFrame(t *testing.T) {
	for _, size := range []int{0, 125, 126, 300, 1 << 16, 70000} {
		payload := bytes.Repeat([]byte("x"), size)
		frame := serverFrame(opText, payload)
		for _, cut := range []int{0, 1, 2, 3, 9} {
			if _, _, n, err := nextFrame(frame[:min(cut, len(frame)-1)]); n != 0 || err != nil {
				t.Errorf("size %d cut at %d: n %d, err %v; want to wait for more", size, cut, n, err)
			}
		}
		op, got, n, err := nextFrame(append(frame, 0x81))
		if err != nil || op != opText || n != len(frame) || !bytes.Equal(got, payload) {
			t.Errorf("size %d: op %d, %d bytes, n %d, err %v", size, op, len(got), n, err)
		}
	}
	if _, _, _, err := nextFrame([]byte{0x01, 0x00}); err == nil {
		t.Error("a fragment was taken for a whole message")
	}
}

// TestClientsCheckEveryFrame feeds one client frames as they might arrive:
// split anywhere, several in one read. It counts marks and deltas and
// finds the one gap in the sequence.
func TestClientsCheckEveryFrame(t *testing.T) {
	marks := NewMarks(3)
	for i := range 3 {
		marks.Posting(i)
	}
	var stream []byte
	for _, msg := range []string{
		`{"seq":8,"totals":{},"transactions":[{"record":"bm-0"}],"type":"delta","users":[]}`,
		`{"seq":9,"totals":{},"transactions":[{"record":"bm-1"},{"record":"x"}],"type":"delta","users":[]}`,
		`{"type":"alert","alert":{}}`,
		`{"seq":11,"totals":{},"transactions":[{"record":"bm-2"}],"type":"delta","users":[]}`,
	} {
		stream = append(stream, serverFrame(opText, []byte(msg))...)
	}
	for _, step := range []int{1, 7, len(stream)} {
		c := &Clients{}
		w := &wsConn{seq: 7}
		for rest := stream; len(rest) > 0; rest = rest[min(step, len(rest)):] {
			c.take(w, rest[:min(step, len(rest))], marks, 0)
		}
		if got := c.Frames.Load(); got != 3 {
			t.Errorf("step %d: %d deltas, want 3", step, got)
		}
		if got := c.Seen.Load(); got != 3 {
			t.Errorf("step %d: %d marks, want 3", step, got)
		}
		if got := c.Gaps.Load(); got != 1 {
			t.Errorf("step %d: %d gaps, want 1 (9 to 11)", step, got)
		}
	}
}
