package jsontext

import (
	"strings"
	"unicode/utf8"
)

// Reader reads JSON of a shape its caller knows (arrays of flat objects of
// strings, numbers and arrays of strings) in one pass, without reflection,
// for the decoders on hot paths (the log's batches, HubSpot deliveries,
// canonical events).
// It reads only what it reads exactly as encoding/json does: at anything
// else (an escape in a string, invalid UTF-8, a value of another type, a
// member name that encoding/json would match ignoring case) it fails, and
// the caller decodes the same bytes with encoding/json instead, which gives
// the same result or the error to report. A Reader is not safe for
// concurrent use.
type Reader struct {
	b      []byte
	i      int
	failed bool
	depth  int
	intern map[string]string
}

// maxSkipDepth bounds the nesting of a value Skip reads; a deeper one
// fails the reader rather than recursing further.
const maxSkipDepth = 64

// NewReader returns a reader of b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r a reader of b, keeping the strings it interned: for a
// document of many values read one by one, such as NDJSON's lines.
func (r *Reader) Reset(b []byte) {
	r.b, r.i, r.failed, r.depth = b, 0, false, 0
}

// Failed reports whether the reader met anything it does not read exactly
// as encoding/json would; what it returned since is meaningless.
func (r *Reader) Failed() bool { return r.failed }

// Fail marks the reader failed, for a caller that met a value it does not
// take.
func (r *Reader) Fail() { r.failed = true }

// End reports whether the input held one value and nothing after it but
// white space, and the reader did not fail.
func (r *Reader) End() bool {
	r.space()
	return !r.failed && r.i == len(r.b)
}

func (r *Reader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// Peek returns the first byte of the next value, or 0 at the end.
func (r *Reader) Peek() byte {
	r.space()
	if r.failed || r.i == len(r.b) {
		return 0
	}
	return r.b[r.i]
}

func (r *Reader) expect(c byte) {
	if r.Peek() != c {
		r.failed = true
		return
	}
	r.i++
}

// Array reads an array, calling each at every element, which must read it.
func (r *Reader) Array(each func()) {
	r.expect('[')
	if r.Peek() == ']' {
		r.i++
		return
	}
	for !r.failed {
		each()
		switch r.Peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return
		default:
			r.failed = true
		}
	}
}

// Object reads an object, calling member with each member's name, which
// must read its value. The name is valid only during the call.
func (r *Reader) Object(member func(name []byte)) {
	r.expect('{')
	if r.Peek() == '}' {
		r.i++
		return
	}
	for !r.failed {
		name := r.plain()
		r.expect(':')
		if r.failed {
			return
		}
		member(name)
		switch r.Peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return
		default:
			r.failed = true
		}
	}
}

// Unknown reads the value of a member whose name is none of known, which
// encoding/json ignores. A name that encoding/json would match to one of
// known ignoring case, or one not of ASCII (whose case folding this reader
// does not mirror), fails the reader.
func (r *Reader) Unknown(name []byte, known []string) {
	for _, c := range name {
		if c >= utf8.RuneSelf {
			r.failed = true
			return
		}
	}
	for _, k := range known {
		if strings.EqualFold(string(name), k) {
			r.failed = true
			return
		}
	}
	r.Skip()
}

// plain reads a string without escapes or control characters, valid UTF-8,
// and returns its bytes between the quotes; any other string fails.
func (r *Reader) plain() []byte {
	r.expect('"')
	start := r.i
	ascii := true
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			if !ascii && !utf8.Valid(s) {
				r.failed = true
			}
			return s
		case c == '\\' || c < 0x20:
			r.failed = true
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
		r.i++
	}
	r.failed = true
	return nil
}

// String reads a string value into *dst; null leaves *dst as it is, as
// encoding/json does.
func String[S ~string](r *Reader, dst *S) {
	if r.null() {
		return
	}
	if s := r.plain(); !r.failed {
		*dst = S(s)
	}
}

// Interned is String for values that repeat across a document (tenants,
// sources, entities): equal values share one string.
func Interned[S ~string](r *Reader, dst *S) {
	if r.null() {
		return
	}
	s := r.plain()
	if r.failed {
		return
	}
	if v, ok := r.intern[string(s)]; ok {
		*dst = S(v)
		return
	}
	if r.intern == nil {
		r.intern = map[string]string{}
	}
	v := string(s)
	r.intern[v] = v
	*dst = S(v)
}

// Strings reads an array of strings into *dst as encoding/json does: null
// makes it nil, [] an empty slice. The strings are interned: they are
// names (of fields) that repeat.
func (r *Reader) Strings(dst *[]string) {
	if r.null() {
		*dst = nil
		return
	}
	out := []string{}
	r.Array(func() {
		var s string
		Interned(r, &s)
		out = append(out, s)
	})
	*dst = out
}

// Raw reads a string or a number and returns its text as written: a
// string with its quotes. Any other value fails the reader.
func (r *Reader) Raw() []byte {
	c := r.Peek()
	start := r.i
	switch {
	case c == '"':
		r.plain()
	case c == '-' || c >= '0' && c <= '9':
		r.number()
	default:
		r.failed = true
	}
	return r.b[start:r.i]
}

// Text reads a string or a number as the exact text it was sent as, and
// null as "", as ingest.Text reads them.
func Text[S ~string](r *Reader, dst *S) {
	if r.null() {
		*dst = ""
		return
	}
	if raw := r.Raw(); !r.failed {
		if raw[0] == '"' {
			raw = raw[1 : len(raw)-1]
		}
		*dst = S(raw)
	}
}

// null reads null when it is next.
func (r *Reader) null() bool {
	if r.Peek() == 'n' {
		r.literal("null")
		return true
	}
	return false
}

func (r *Reader) literal(word string) {
	if !strings.HasPrefix(string(r.b[r.i:]), word) {
		r.failed = true
		return
	}
	r.i += len(word)
}

// number reads a number of JSON's grammar.
func (r *Reader) number() {
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case r.digits() == 0:
		r.failed = true
		return
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if r.digits() == 0 {
			r.failed = true
			return
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if r.digits() == 0 {
			r.failed = true
		}
	}
}

func (r *Reader) digits() int {
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	return r.i - start
}

// Skip reads any value and drops it.
func (r *Reader) Skip() {
	if r.depth++; r.depth > maxSkipDepth {
		r.failed = true
	}
	defer func() { r.depth-- }()
	switch c := r.Peek(); {
	case r.failed:
	case c == '"':
		r.plain()
	case c == '-' || c >= '0' && c <= '9':
		r.number()
	case c == '[':
		r.Array(r.Skip)
	case c == '{':
		r.Object(func([]byte) { r.Skip() })
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	default:
		r.failed = true
	}
}
