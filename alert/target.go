package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/crmpulse/crmpulse/config"
)

// Target delivers one notification. Send may be called concurrently for
// different states; it returns once the receiver accepted the notification
// or failed, and the evaluator retries a failure with backoff.
type Target interface {
	Send(ctx context.Context, st State) error
}

// NewTarget returns the target of a configured one; getenv reads the
// variables that hold SMTP credentials.
func NewTarget(t config.Target, client *http.Client, getenv func(string) string) (Target, error) {
	switch {
	case t.Webhook != nil:
		return &postTarget{url: t.Webhook.URL, client: client, body: webhookBody}, nil
	case t.Slack != nil:
		return &postTarget{url: t.Slack.URL, client: client, body: slackBody}, nil
	case t.Teams != nil:
		return &postTarget{url: t.Teams.URL, client: client, body: teamsBody}, nil
	case t.Email != nil:
		return newEmailTarget(*t.Email, getenv)
	}
	return nil, fmt.Errorf("target %s: no kind set", t.Name)
}

// postTarget POSTs a JSON body built from the state.
type postTarget struct {
	url    string
	client *http.Client
	body   func(State) any
}

func (p *postTarget) Send(ctx context.Context, st State) error {
	data, err := json.Marshal(p.body(st))
	if err != nil {
		return fmt.Errorf("encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		// The error names the URL, which for Slack and Teams is the
		// secret; say only what failed.
		return fmt.Errorf("post notification: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post notification: the receiver answered %s", resp.Status)
	}
	return nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(interface{ Unwrap() error }); ok && ue.Unwrap() != nil {
		return ue.Unwrap()
	}
	return err
}

// webhookBody is the state object itself, as API.md shows it.
func webhookBody(st State) any { return st }

// slackBody is a Slack incoming-webhook message.
func slackBody(st State) any { return map[string]string{"text": Summary(st)} }

// teamsBody is a message with one Adaptive Card, the shape Microsoft Teams
// workflow webhooks ("Post to a channel when a webhook request is
// received") take.
func teamsBody(st State) any {
	facts := []map[string]string{{"title": "Rule", "value": st.Rule}, {"title": "State", "value": st.State}}
	if st.LastActivity != nil {
		facts = append(facts, map[string]string{"title": "Last activity", "value": st.LastActivity.Format(time.RFC3339)})
	} else {
		facts = append(facts, map[string]string{"title": "Last activity", "value": "never"})
	}
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body": []any{
			map[string]any{"type": "TextBlock", "text": Summary(st), "wrap": true, "weight": "Bolder"},
			map[string]any{"type": "FactSet", "facts": facts},
		},
	}
	return map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	}
}

// Summary is a one-line text of a notification, for chat and mail.
func Summary(st State) string {
	last := "never"
	if st.LastActivity != nil {
		last = "since " + st.LastActivity.UTC().Format("2006-01-02 15:04 MST")
	}
	switch {
	case st.Kind == KindSourceSilent && st.State == StateResolved:
		return fmt.Sprintf("Source %s sends events again (rule %s).", deref(st.Source), st.Rule)
	case st.Kind == KindSourceSilent:
		return fmt.Sprintf("No events from source %s %s (rule %s).", deref(st.Source), last, st.Rule)
	case st.State == StateResolved:
		return fmt.Sprintf("%s is active in the CRM again (rule %s).", personName(st), st.Rule)
	case st.LastActivity == nil:
		return fmt.Sprintf("%s has never used the CRM (rule %s).", personName(st), st.Rule)
	}
	return fmt.Sprintf("%s has not used the CRM %s (rule %s).", personName(st), last, st.Rule)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func personName(st State) string {
	if st.Person == nil {
		return ""
	}
	return st.Person.Name
}

// emailTarget sends mail through SMTP with go-mail, using STARTTLS when
// the server offers it.
type emailTarget struct {
	cfg                config.EmailTarget
	host               string
	port               int
	username, password string
}

func newEmailTarget(cfg config.EmailTarget, getenv func(string) string) (*emailTarget, error) {
	host, portText, err := net.SplitHostPort(cfg.SMTP)
	if err != nil {
		return nil, fmt.Errorf("smtp %q: %w", cfg.SMTP, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("smtp %q: the port is not a number", cfg.SMTP)
	}
	e := &emailTarget{cfg: cfg, host: host, port: port}
	if cfg.UsernameEnv != "" {
		e.username, e.password = getenv(cfg.UsernameEnv), getenv(cfg.PasswordEnv)
	}
	return e, nil
}

func (e *emailTarget) Send(ctx context.Context, st State) error {
	msg := mail.NewMsg()
	if err := msg.From(e.cfg.From); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	if err := msg.To(e.cfg.To...); err != nil {
		return fmt.Errorf("mail to: %w", err)
	}
	msg.Subject("crmpulse: " + Summary(st))
	body, _ := json.MarshalIndent(st, "", "  ")
	msg.SetBodyString(mail.TypeTextPlain, Summary(st)+"\n\n"+string(body)+"\n")

	opts := []mail.Option{mail.WithPort(e.port), mail.WithTLSPolicy(mail.TLSOpportunistic),
		mail.WithTimeout(30 * time.Second)}
	if e.username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(e.username), mail.WithPassword(e.password))
	}
	client, err := mail.NewClient(e.host, opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}
