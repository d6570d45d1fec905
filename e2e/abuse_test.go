package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestAbuseLeavesServerAnsweringAndStateIntact throws oversized bodies,
// slow clients, malformed JSON, header injection, path tricks and 2,000
// idle websockets at a server with sign-in configured, then finds it
// answering with the same report.
func TestAbuseLeavesServerAnsweringAndStateIntact(t *testing.T) {
	s, _ := securedServer(t)
	admin := cred{bearer: adminToken}
	window := period()
	_, before := s.send("GET", "/v1/report?"+window, admin, nil)

	t.Run("oversized bodies", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 2<<20)
		if resp, _ := s.send("PUT", "/v1/users/x", admin, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MiB person: status %d, want 413", resp.StatusCode)
		}
		huge := bytes.Repeat([]byte(" "), 33<<20)
		if resp, _ := s.send("POST", "/v1/events", admin, huge); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("33 MiB events: status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		for _, body := range []string{`[{"id":`, `{"user": 1e999999}`, "\x00\xff", `[` + strings.Repeat(`[`, 10000)} {
			if resp, _ := s.send("POST", "/v1/events", admin, []byte(body)); resp.StatusCode/100 != 4 {
				t.Errorf("%.20q: status %d, want 4xx", body, resp.StatusCode)
			}
		}
		if resp, _ := s.send("PUT", "/v1/users/x", admin, []byte(`{"name":`)); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("broken person: status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("header injection", func(t *testing.T) {
		resp, _ := s.send("GET", "/v1/report?team=%0d%0aX-Injected:%201&"+period(), admin, nil)
		if resp.Header.Get("X-Injected") != "" {
			t.Error("a query value became a header")
		}
		status, _ := rawRequest(t, s, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n")
		if !strings.Contains(status, "400") {
			t.Errorf("bare CR in a header: %q, want 400", status)
		}
	})
	t.Run("path tricks", func(t *testing.T) {
		for _, path := range []string{"/v1/../v1/report", "/v1%2freport", "/v1/%2e%2e/v1/users", "//v1/users",
			"/../../../../etc/passwd", "/%2e%2e/%2e%2e/go.mod", "/v1/users/..%2f..%2fv1%2faudit", "/./metrics"} {
			status, rest := rawRequest(t, s, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if strings.Contains(status, " 200 ") || strings.Contains(rest, "root:") || strings.Contains(rest, "module ") {
				t.Errorf("GET %s without credentials: %s", path, status)
			}
		}
	})
	t.Run("slow clients", func(t *testing.T) {
		var slow []net.Conn
		for range 300 {
			c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			slow = append(slow, c)
		}
		defer func() {
			for _, c := range slow {
				c.Close()
			}
		}()
		if resp, _ := s.send("GET", "/healthz", cred{}, nil); resp.StatusCode != 200 {
			t.Errorf("healthz beside 300 slow clients: %d", resp.StatusCode)
		}
		// The server drops a client that takes longer than ReadHeaderTimeout
		// (10 s) to send its headers.
		slow[0].SetReadDeadline(time.Now().Add(20 * time.Second))
		start := time.Now()
		buf := make([]byte, 512)
		for {
			if _, err := slow[0].Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Error("a client trickling headers was held for 20 s")
				}
				break
			}
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("a slow client was dropped after %v", d)
		}
	})
	t.Run("thousands of idle websockets", func(t *testing.T) {
		const n = 2000
		conns := make([]*websocket.Conn, 0, n)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		ws := "ws" + strings.TrimPrefix(s.url, "http") + "/v1/live?token=" + adminToken
		var mu sync.Mutex
		var failed atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for range n / 20 {
					c, _, err := websocket.DefaultDialer.Dial(ws, nil)
					if err != nil {
						failed.Add(1)
						continue
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Errorf("%d of %d websockets refused", failed.Load(), n)
		}
		// The server counts a client once its handler runs, which may be
		// just after the client saw the handshake: poll for the count.
		var clients string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			_, metrics := s.send("GET", "/metrics", admin, nil)
			for _, line := range strings.Split(string(metrics), "\n") {
				if strings.HasPrefix(line, "crmpulse_websocket_clients ") {
					clients = line
				}
			}
			if clients == fmt.Sprintf("crmpulse_websocket_clients %d", n) {
				break
			}
		}
		if clients != fmt.Sprintf("crmpulse_websocket_clients %d", n) {
			t.Errorf("metric %q, want %d clients", clients, n)
		}
		if resp, _ := s.send("GET", "/v1/report?"+period(), admin, nil); resp.StatusCode != 200 {
			t.Errorf("report beside %d idle websockets: %d", n, resp.StatusCode)
		}
	})

	if resp, _ := s.send("GET", "/healthz", cred{}, nil); resp.StatusCode != 200 {
		t.Fatalf("healthz after the abuse: %d", resp.StatusCode)
	}
	if _, after := s.send("GET", "/v1/report?"+window, admin, nil); !bytes.Equal(before, after) {
		t.Errorf("the report changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestShutdownUnderLoadLosesNothing posts events from several clients,
// stops the server with SIGTERM in the middle, starts it again, and finds
// every acknowledged event counted.
func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	s := startServer(t, "", "CRMPULSE_INGEST_TOKEN=ingest")
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	var acked, sent atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var batch []map[string]any
				for j := range 10 {
					batch = append(batch, map[string]any{"id": fmt.Sprintf("load-%d-%d-%d", w, i, j), "user": "u",
						"entity": "lead", "record": fmt.Sprintf("R-%d-%d-%d", w, i, j), "action": "created", "at": at})
				}
				req, _ := http.NewRequest("POST", s.url+"/v1/events", bytes.NewReader(mustJSON(t, batch)))
				req.Header.Set("Authorization", "Bearer ingest")
				sent.Add(10)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					acked.Add(10)
				}
			}
		})
	}
	time.Sleep(time.Second)
	s.cmd.Process.Signal(os.Interrupt)
	<-s.done
	close(stop)
	wg.Wait()
	if acked.Load() == 0 {
		t.Fatalf("no event was acknowledged before the shutdown:\n%s", s.logs)
	}
	s.start()
	var r report
	s.do("GET", "/v1/report?"+period(), "", nil, &r)
	got := int64(r.Totals["lead"]["created"])
	if got < acked.Load() || got > sent.Load() {
		t.Errorf("after restart %d events counted; %d were acknowledged, %d sent", got, acked.Load(), sent.Load())
	}
}
