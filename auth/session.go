package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrBadSession is returned for a cookie that is forged, damaged or expired.
var ErrBadSession = errors.New("auth: the session is not valid")

// Sessions signs and checks session cookies' values with an HMAC-SHA256
// key. A session holds no secret (name, role, team, expiry), so it is
// signed rather than encrypted; it cannot be changed without the key.
type Sessions struct {
	key []byte
	ttl time.Duration
}

// NewSessions returns sessions that last ttl, signed with key (at least 32
// bytes).
func NewSessions(key []byte, ttl time.Duration) (*Sessions, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("auth: a session key needs at least 32 bytes, got %d", len(key))
	}
	return &Sessions{key: key, ttl: ttl}, nil
}

// TTL returns how long a session lasts.
func (s *Sessions) TTL() time.Duration { return s.ttl }

type sessionBody struct {
	Name    string   `json:"n"`
	Role    string   `json:"r"`
	Team    string   `json:"t,omitempty"`
	Scopes  []string `json:"s"`
	Expires int64    `json:"e"`
}

// Encode returns the cookie value of a session for p that starts now.
func (s *Sessions) Encode(p Principal, now time.Time) string {
	body, _ := json.Marshal(sessionBody{Name: p.Name, Role: p.Role, Team: p.Team, Scopes: p.Scopes,
		Expires: now.Add(s.ttl).Unix()})
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// Decode returns the principal of a cookie value, or ErrBadSession.
func (s *Sessions) Decode(value string, now time.Time) (Principal, error) {
	payload, sig, ok := strings.Cut(value, ".")
	if !ok {
		return Principal{}, ErrBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return Principal{}, ErrBadSession
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Principal{}, ErrBadSession
	}
	var b sessionBody
	if json.Unmarshal(raw, &b) != nil || now.Unix() >= b.Expires {
		return Principal{}, ErrBadSession
	}
	return Principal{Name: b.Name, Kind: "session", Role: b.Role, Team: b.Team, Scopes: b.Scopes}, nil
}

type sealed struct {
	Value   string `json:"v"`
	Expires int64  `json:"e"`
}

// Seal returns value signed so that Unseal accepts it until ttl has
// passed; for short-lived state such as a sign-in in progress.
func (s *Sessions) Seal(value string, ttl time.Duration, now time.Time) string {
	body, _ := json.Marshal(sealed{Value: value, Expires: now.Add(ttl).Unix()})
	payload := base64.RawURLEncoding.EncodeToString(body)
	return "v." + payload + "." + base64.RawURLEncoding.EncodeToString(s.mac("v."+payload))
}

// Unseal returns the value of what Seal made, or ErrBadSession.
func (s *Sessions) Unseal(text string, now time.Time) (string, error) {
	rest, ok := strings.CutPrefix(text, "v.")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return "", ErrBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("v."+payload)) {
		return "", ErrBadSession
	}
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	var b sealed
	if json.Unmarshal(raw, &b) != nil || now.Unix() >= b.Expires {
		return "", ErrBadSession
	}
	return b.Value, nil
}

func (s *Sessions) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("crmpulse-session\x00" + payload))
	return m.Sum(nil)
}

// LoadKey returns the session key: configured (hex, 64 digits or more)
// when set, else the one kept in dir/session.key, made on first use. A kept
// key keeps people signed in across restarts.
func LoadKey(configured, dir string) ([]byte, error) {
	if configured != "" {
		key, err := hex.DecodeString(configured)
		if err != nil || len(key) < 32 {
			return nil, errors.New("config auth.session_key: must be at least 64 hex digits (32 bytes)")
		}
		return key, nil
	}
	path := filepath.Join(dir, "session.key")
	if data, err := os.ReadFile(path); err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("read session key %s: not 64 hex digits; delete it to make a new one", path)
		}
		return key, nil
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("read session key: %w", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write session key: %w", err)
	}
	return key, nil
}
