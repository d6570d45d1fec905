package alert_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse/alert"
	"github.com/crmpulse/crmpulse/config"
)

func firingState() alert.State {
	last := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	sent := time.Date(2026, 3, 3, 10, 0, 2, 0, time.UTC)
	return alert.State{Rule: "quiet-two-days", Kind: alert.KindPersonInactive,
		Person: &alert.PersonRef{ID: "Carl Lin", Name: "Carl Lin"}, State: alert.StateFiring,
		Since: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC), LastActivity: &last, LastNotified: &sent,
		DeliveryErrors: []alert.DeliveryError{}}
}

// sendTo delivers the firing state through a configured target.
func sendTo(t *testing.T, target config.Target) {
	t.Helper()
	tg, err := alert.NewTarget(target, http.DefaultClient, func(name string) string {
		return map[string]string{"SMTP_USER": "crmpulse", "SMTP_PASSWORD": "s3cret"}[name]
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tg.Send(ctx, firingState()); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func TestWebhookReceivesTheState(t *testing.T) {
	r := newReceiver(t)
	sendTo(t, config.Target{Name: "hook", Webhook: &config.URLTarget{URL: r.srv.URL}})
	r.mu.Lock()
	body := r.bodies[0]
	r.mu.Unlock()
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"rule", "kind", "person", "source", "state", "since", "last_activity", "last_notified", "delivery_errors"} {
		if _, ok := got[key]; !ok {
			t.Errorf("webhook body lacks %q: %s", key, body)
		}
	}
	if got["state"] != "firing" || got["source"] != nil || got["person"].(map[string]any)["name"] != "Carl Lin" {
		t.Errorf("webhook body = %s", body)
	}
}

func TestSlackReceivesText(t *testing.T) {
	r := newReceiver(t)
	sendTo(t, config.Target{Name: "slack", Slack: &config.URLTarget{URL: r.srv.URL}})
	var got map[string]string
	if err := json.Unmarshal(r.bodies[0], &got); err != nil {
		t.Fatalf("slack body is not {\"text\": ...}: %v", err)
	}
	want := "Carl Lin has not used the CRM since 2026-03-02 09:00 UTC (rule quiet-two-days)."
	if len(got) != 1 || got["text"] != want {
		t.Errorf("slack body = %q, want text %q", got, want)
	}
}

func TestTeamsReceivesAnAdaptiveCard(t *testing.T) {
	r := newReceiver(t)
	sendTo(t, config.Target{Name: "teams", Teams: &config.URLTarget{URL: r.srv.URL}})
	var got struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Schema  string `json:"$schema"`
				Type    string `json:"type"`
				Version string `json:"version"`
				Body    []struct {
					Type  string `json:"type"`
					Text  string `json:"text"`
					Facts []struct{ Title, Value string }
				} `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(r.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "message" || len(got.Attachments) != 1 {
		t.Fatalf("teams body = %s", r.bodies[0])
	}
	a := got.Attachments[0]
	if a.ContentType != "application/vnd.microsoft.card.adaptive" || a.Content.Type != "AdaptiveCard" ||
		a.Content.Version == "" || !strings.Contains(a.Content.Schema, "adaptivecards.io") {
		t.Errorf("attachment = %+v", a)
	}
	if len(a.Content.Body) != 2 || !strings.Contains(a.Content.Body[0].Text, "Carl Lin") ||
		a.Content.Body[1].Type != "FactSet" || a.Content.Body[1].Facts[0].Value != "quiet-two-days" {
		t.Errorf("card body = %+v", a.Content.Body)
	}
}

func TestFailedDeliveryNamesNoURL(t *testing.T) {
	tg, err := alert.NewTarget(config.Target{Name: "slack", Slack: &config.URLTarget{URL: "http://127.0.0.1:1/services/SECRET"}},
		http.DefaultClient, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = tg.Send(context.Background(), firingState())
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error = %v, want a failure that does not show the webhook URL", err)
	}
}

// smtpServer is a minimal SMTP server on 127.0.0.1: it offers AUTH
// CRAM-MD5 (the one mechanism a client may use without TLS) and no
// STARTTLS, and keeps each message's envelope and data.
type smtpServer struct {
	ln net.Listener

	mu   sync.Mutex
	auth []string
	from []string
	to   []string
	data []string
}

func newSMTPServer(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	reply := func(line string) { conn.Write([]byte(line + "\r\n")) }
	reply("220 127.0.0.1 ESMTP test")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		s.mu.Lock()
		switch verb {
		case "EHLO", "HELO":
			reply("250-127.0.0.1 hello")
			reply("250-AUTH CRAM-MD5")
			reply("250 8BITMIME")
		case "AUTH":
			reply("334 " + base64.StdEncoding.EncodeToString([]byte("<1896.697170952@127.0.0.1>")))
			answer, _ := r.ReadString('\n')
			user, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(answer))
			s.auth = append(s.auth, line+" "+string(user))
			reply("235 2.7.0 authenticated")
		case "MAIL":
			s.from = append(s.from, line)
			reply("250 OK")
		case "RCPT":
			s.to = append(s.to, line)
			reply("250 OK")
		case "DATA":
			reply("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					s.mu.Unlock()
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.data = append(s.data, b.String())
			reply("250 OK queued")
		case "QUIT":
			reply("221 bye")
			s.mu.Unlock()
			return
		default:
			reply("250 OK")
		}
		s.mu.Unlock()
	}
}

func TestEmailGoesThroughSMTP(t *testing.T) {
	srv := newSMTPServer(t)
	sendTo(t, config.Target{Name: "mail", Email: &config.EmailTarget{
		To: []string{"sales-managers@example.com"}, From: "crmpulse@example.com",
		SMTP: srv.ln.Addr().String(), UsernameEnv: "SMTP_USER", PasswordEnv: "SMTP_PASSWORD",
	}})
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.data) != 1 {
		t.Fatalf("messages = %d, want 1", len(srv.data))
	}
	if len(srv.auth) != 1 || !strings.HasPrefix(srv.auth[0], "AUTH CRAM-MD5 crmpulse ") ||
		strings.Contains(srv.auth[0], "s3cret") {
		t.Errorf("auth = %q, want CRAM-MD5 as the user from the environment, no password in clear", srv.auth)
	}
	if !strings.Contains(srv.from[0], "<crmpulse@example.com>") || !strings.Contains(srv.to[0], "<sales-managers@example.com>") {
		t.Errorf("envelope = %q %q", srv.from, srv.to)
	}
	msg := srv.data[0]
	for _, want := range []string{"Subject: crmpulse: Carl Lin has not used the CRM", "To: <sales-managers@example.com>",
		`"rule": "quiet-two-days"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}
