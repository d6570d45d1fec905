package hubspot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse/ingest"
)

// MaxSkew is how far X-HubSpot-Request-Timestamp may be from the receiver's
// clock for a v3 signature to count. HubSpot documents rejecting older
// timestamps; rejecting ones as far in the future is a local choice.
const MaxSkew = 5 * time.Minute

// v3Unescape decodes exactly the percent-encodings HubSpot documents for the
// v3 URI. Other escapes (%20, %26, %3D) are left alone; HubSpot does not say
// what it does with them.
var v3Unescape = strings.NewReplacer(
	"%3A", ":", "%2F", "/", "%3F", "?", "%40", "@", "%21", "!", "%24", "$",
	"%27", "'", "%28", "(", "%29", ")", "%2A", "*", "%2C", ",", "%3B", ";",
)

// SignatureV1 is the v1 signature: lowercase hex SHA-256 of secret + body.
func SignatureV1(secret string, body []byte) string {
	return sha256Hex(secret, body)
}

// SignatureV2 is the v2 signature: lowercase hex SHA-256 of
// secret + method + uri + body, uri being the full URL as requested.
func SignatureV2(secret, method, uri string, body []byte) string {
	return sha256Hex(secret+method+uri, body)
}

// SignatureV3 is the v3 signature: base64 HMAC-SHA256 under secret of
// method + uri + body + timestamp, uri being the full URL after the
// documented percent-decoding and timestamp the header's string verbatim.
func SignatureV3(secret, method, uri string, body []byte, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(method + v3Unescape.Replace(uri)))
	mac.Write(body)
	mac.Write([]byte(timestamp))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func sha256Hex(prefix string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// verify accepts a request whose v3 signature is present and valid, or,
// without a v3 header, whose v1 or v2 signature (per
// X-HubSpot-Signature-Version, v1 when absent) is valid.
func (h *Hook) verify(r *http.Request, body []byte, now time.Time) error {
	if h.cfg.Secret == "" {
		return ingest.Unauthorized("CRMPULSE_HUBSPOT_SECRET is not set, so no HubSpot delivery can be verified")
	}
	uri := h.fullURL(r)
	if sent := r.Header.Get("X-HubSpot-Signature-v3"); sent != "" {
		ts := r.Header.Get("X-HubSpot-Request-Timestamp")
		if err := fresh(ts, now); err != nil {
			return err
		}
		return compare(sent, SignatureV3(h.cfg.Secret, r.Method, uri, body, ts), "X-HubSpot-Signature-v3")
	}
	sent := r.Header.Get("X-HubSpot-Signature")
	if sent == "" {
		return ingest.Unauthorized("missing X-HubSpot-Signature-v3 and X-HubSpot-Signature headers")
	}
	switch v := r.Header.Get("X-HubSpot-Signature-Version"); v {
	case "", "v1":
		return compare(strings.ToLower(sent), SignatureV1(h.cfg.Secret, body), "X-HubSpot-Signature (v1)")
	case "v2":
		return compare(strings.ToLower(sent), SignatureV2(h.cfg.Secret, r.Method, uri, body), "X-HubSpot-Signature (v2)")
	default:
		return ingest.Unauthorized("unknown X-HubSpot-Signature-Version %.10q", v)
	}
}

// fresh checks the v3 timestamp: epoch milliseconds within MaxSkew of now.
func fresh(ts string, now time.Time) error {
	if ts == "" {
		return ingest.Unauthorized("missing X-HubSpot-Request-Timestamp, which the v3 signature covers")
	}
	sent, err := ingest.Millis(ts)
	if err != nil {
		return ingest.Unauthorized("X-HubSpot-Request-Timestamp %.20q is not epoch milliseconds", ts)
	}
	if skew := now.Sub(sent); skew > MaxSkew || skew < -MaxSkew {
		return ingest.Unauthorized("stale X-HubSpot-Request-Timestamp: %s is %s from the receiver's clock, more than %s",
			sent.Format(time.RFC3339Nano), skew.Round(time.Second), MaxSkew)
	}
	return nil
}

func compare(sent, want, what string) error {
	if !hmac.Equal([]byte(sent), []byte(want)) {
		return ingest.Unauthorized("%s does not match; check the app's client secret and CRMPULSE_PUBLIC_URL", what)
	}
	return nil
}

// fullURL is the URL HubSpot signed: the configured public base URL and the
// request-target as it arrived, or the URL rebuilt from the request when no
// public URL is configured (which breaks behind a proxy that rewrites it).
func (h *Hook) fullURL(r *http.Request) string {
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	base := strings.TrimRight(h.cfg.PublicURL, "/")
	if base == "" {
		scheme := "https"
		if r.TLS == nil {
			scheme = "http"
		}
		base = scheme + "://" + r.Host
	}
	return base + target
}
