package ingest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmpulse/crmpulse"
)

// This file holds what the source decoders share: reading JSON without
// losing digits, epoch and ISO times, secret comparison, and the final
// check of the events a decoder made.

// Text is a JSON string or number kept as the exact text it was sent as, so
// that ids above 2^53 never pass through a float64. null reads as "".
type Text string

// UnmarshalJSON accepts a string, a number or null.
func (t *Text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errors.New("empty value")
	case b[0] == '"':
		s, err := unquote(b)
		if err != nil {
			return err
		}
		*t = Text(s)
	case string(b) == "null":
		*t = ""
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		// A number as written, which the decoder has checked.
		*t = Text(b)
	default:
		return fmt.Errorf("want a string or a number, got %.20s", b)
	}
	return nil
}

// DecodeJSON reads one JSON value from body into v, numbers as json.Number,
// and answers a malformed body with a 400 that says where it broke.
func DecodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return BadRequest("cannot read JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return BadRequest("cannot read JSON body: data after the first value")
	}
	return nil
}

// unquote reads b, a JSON value a decoder has already checked, as a
// string. A string without escapes is its bytes between the quotes, valid
// UTF-8 as encoding/json would leave it; others go through encoding/json.
func unquote(b []byte) (string, error) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), nil
		}
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}

// Epoch reads a decimal integer count of unit since 1970-01-01 UTC (unit is
// time.Second, time.Millisecond, time.Microsecond or time.Nanosecond) as a
// UTC instant, without overflow for any int64.
func Epoch(s string, unit time.Duration) (time.Time, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an integer epoch: %q", s)
	}
	perSecond := int64(time.Second / unit)
	return time.Unix(n/perSecond, n%perSecond*int64(unit)).UTC(), nil
}

// Millis reads an epoch in milliseconds, the unit most CRMs use.
func Millis(s string) (time.Time, error) {
	return Epoch(s, time.Millisecond)
}

// ParseISO reads an ISO-8601 date-time with its offset, or as UTC when it has
// none, keeping the fraction.
func ParseISO(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.Parse("2006-01-02T15:04:05.999999999", s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("not an ISO-8601 date-time: %q", s)
	}
	return t.UTC(), nil
}

// SecretEqual compares a sent secret with the configured one in time that
// depends on neither, so a sender learns nothing from how long a refusal
// took. An empty configured secret matches nothing.
func SecretEqual(sent, configured string) bool {
	if configured == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(sent)), sha256.Sum256([]byte(configured))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// CheckHMACSHA256 checks a hex HMAC-SHA256 of body under secret, as sent in
// the named header (an optional "sha256=" prefix is allowed).
func CheckHMACSHA256(secret, header, sent string, body []byte) error {
	if secret == "" {
		return Unauthorized("no secret is configured for this hook, so no delivery can be verified")
	}
	if sent == "" {
		return Unauthorized("missing %s header", header)
	}
	got, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(sent), "sha256="))
	if err != nil {
		return Unauthorized("%s is not hex", header)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return Unauthorized("%s does not match the body", header)
	}
	return nil
}

// SignHMACSHA256 returns the lowercase hex HMAC-SHA256 of body under secret,
// the signature CheckHMACSHA256 accepts; for relays and tests.
func SignHMACSHA256(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// SameJSON reports whether two JSON values are written alike but for
// insignificant white space.
func SameJSON(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// EntityName turns a source's own object type name into an entity name:
// lowercase, each character outside [a-z0-9_] replaced by '_'
// (MyObject__c becomes myobject__c). The result may still be invalid (empty,
// or starting with a digit); Check reports that.
func EntityName(name string) string {
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	return string(b)
}

// Ignore counts one well-formed part of the delivery of a kind that is not
// counted as a change.
func (d *Delivery) Ignore(kind string) {
	if d.Ignored == nil {
		d.Ignored = map[string]int{}
	}
	d.Ignored[kind]++
}

// Gap counts changes the source says were lost without naming the records.
func (d *Delivery) Gap(kind string) {
	if d.Gaps == nil {
		d.Gaps = map[string]int{}
	}
	d.Gaps[kind]++
}

// DeadLetter keeps a part of an accepted delivery that could not be decoded.
func (d *Delivery) DeadLetter(reason string, data []byte) {
	d.DeadLetters = append(d.DeadLetters, DeadLetter{Reason: reason, Data: data})
}

// Merge adds everything o holds to d, after what d already holds.
func (d *Delivery) Merge(o *Delivery) {
	for _, l := range o.Lookups {
		d.Lookups = append(d.Lookups, Lookup{Event: len(d.Events) + l.Event, Resource: l.Resource})
	}
	d.Events = append(d.Events, o.Events...)
	d.DeadLetters = append(d.DeadLetters, o.DeadLetters...)
	for k, n := range o.Ignored {
		d.Ignore(k)
		d.Ignored[k] += n - 1
	}
	for k, n := range o.Gaps {
		d.Gap(k)
		d.Gaps[k] += n - 1
	}
}

// Check normalizes each event in place and refuses the delivery with a 400
// naming every invalid one, so that nothing a decoder made from odd input
// reaches the log unchecked.
func Check(events []crmpulse.Event, now time.Time) error {
	var errs []crmpulse.FieldError
	for i := range events {
		for _, fe := range Invalid(&events[i], now) {
			fe.Index = &i
			errs = append(errs, fe)
		}
	}
	if errs == nil {
		return nil
	}
	e := BadRequest("%d of the delivery's changes cannot be counted: %s %s",
		len(errs), errs[0].Field, errs[0].Detail)
	e.Errors = errs
	return e
}

// Invalid normalizes e and lists what is wrong with it: the event's own
// Validate, plus an instant outside the years the log can store.
func Invalid(e *crmpulse.Event, now time.Time) []crmpulse.FieldError {
	e.Normalize()
	errs := e.Validate(now)
	if !e.At.IsZero() && (e.At.Year() < 1970 || e.At.Year() > 9999) {
		errs = append(errs, crmpulse.FieldError{Field: "at", Detail: "outside the years 1970 to 9999"})
	}
	return errs
}
