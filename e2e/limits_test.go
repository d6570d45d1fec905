package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientFrom returns a client whose connections leave from ip, another
// loopback address, so that the server sees another client address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// retryAfter returns the whole seconds of a 429's Retry-After, failing
// the test when it is missing or not a positive number.
func retryAfter(t *testing.T, resp *http.Response) int {
	t.Helper()
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
	}
	return secs
}

// TestRateLimits spends the burst of hook deliveries of one source from
// one address and of sign-in attempts from one address, and checks that
// the next is refused with 429 and Retry-After, while another source and
// another address are still served.
func TestRateLimits(t *testing.T) {
	s := startServerWith(t, "", []string{"--config", signInConfig(t, rootPass, "")},
		"CRMPULSE_ADMIN_TOKEN="+adminToken, "CRMPULSE_LIMITS_HOOK_RPS=0.01", "CRMPULSE_LIMITS_HOOK_BURST=3",
		"CRMPULSE_LIMITS_SIGNIN_PER_MINUTE=3")
	first, second := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	if _, err := second.Get(s.url + "/healthz"); err != nil {
		t.Fatalf("cannot connect from 127.0.0.2, so addresses cannot be told apart here: %v", err)
	}

	hook := func(c *http.Client, source string) *http.Response {
		t.Helper()
		resp, err := c.Post(s.url+"/v1/hooks/"+source, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("hooks", func(t *testing.T) {
		for i := range 3 {
			if resp := hook(first, "generic"); resp.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("delivery %d of a burst of 3 was refused", i+1)
			}
		}
		resp := hook(first, "generic")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("delivery past the burst: status %d, want 429", resp.StatusCode)
		}
		if secs := retryAfter(t, resp); secs < 50 {
			t.Errorf("Retry-After %d s, want about 100 s at 0.01 deliveries a second", secs)
		}
		if resp := hook(first, "zoho"); resp.StatusCode == http.StatusTooManyRequests {
			t.Error("another source from the same address was limited")
		}
		if resp := hook(second, "generic"); resp.StatusCode == http.StatusTooManyRequests {
			t.Error("the same source from another address was limited")
		}
		if !strings.Contains(s.metrics(), `crmpulse_rate_limited_total{route="hook:generic"} 1`) {
			t.Error("the refusal is not counted in crmpulse_rate_limited_total")
		}
	})

	signin := func(c *http.Client, password string) *http.Response {
		t.Helper()
		resp, err := c.PostForm(s.url+"/signin", url.Values{"name": {"root"}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("signin", func(t *testing.T) {
		for i := range 3 {
			if resp := signin(first, "guess"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("attempt %d: status %d, want 401", i+1, resp.StatusCode)
			}
		}
		resp := signin(first, rootPass)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("attempt past the limit, right password: status %d, want 429", resp.StatusCode)
		}
		if secs := retryAfter(t, resp); secs > 60 {
			t.Errorf("Retry-After %d s, want at most a minute at 3 attempts a minute", secs)
		}
		if resp := signin(second, rootPass); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("sign-in from another address: status %d, want 303", resp.StatusCode)
		}
	})
}

// metrics returns the server's Prometheus text, read with the admin token.
func (s *server) metrics() string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := s.httpClient().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}
