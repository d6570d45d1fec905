package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
)

// Alerts is the alerts block of the configuration file: where to notify and
// which inactivity rules to evaluate. It is set in the file only.
type Alerts struct {
	Targets []Target `koanf:"targets"`
	Rules   []Rule   `koanf:"rules"`
}

// Target is one place notifications go to; exactly one of its kinds is set.
type Target struct {
	Name    string       `koanf:"name"`
	Webhook *URLTarget   `koanf:"webhook"`
	Slack   *URLTarget   `koanf:"slack"`
	Teams   *URLTarget   `koanf:"teams"`
	Email   *EmailTarget `koanf:"email"`
}

// URLTarget is a target reached by an HTTP POST.
type URLTarget struct {
	URL string `koanf:"url"`
}

// EmailTarget sends mail through an SMTP server, with STARTTLS when the
// server offers it. The credentials are read from the environment
// variables it names, so they stay out of the file.
type EmailTarget struct {
	To          []string `koanf:"to"`
	From        string   `koanf:"from"`
	SMTP        string   `koanf:"smtp"`
	UsernameEnv string   `koanf:"username_env"`
	PasswordEnv string   `koanf:"password_env"`
}

// Rule is one inactivity rule. InactiveFor is working time of each
// person's calendar; Pending and Repeat are wall time.
type Rule struct {
	Name        string        `koanf:"name"`
	Watch       any           `koanf:"watch"`
	InactiveFor time.Duration `koanf:"inactive_for"`
	Pending     time.Duration `koanf:"pending"`
	Repeat      time.Duration `koanf:"repeat"`
	Notify      []string      `koanf:"notify"`
	// Watches is Watch read as a list of selectors, set by Validate.
	Watches []Watch `koanf:"-"`
}

// Watch selects people: everyone, a team, an office, or listed person ids.
// A rule watches a person when any of its selectors matches.
type Watch struct {
	Everyone bool     `json:"everyone,omitempty"`
	Team     string   `json:"team,omitempty"`
	Office   string   `json:"office,omitempty"`
	People   []string `json:"people,omitempty"`
}

// Matches reports whether w selects p.
func (w Watch) Matches(p *crmpulse.Person) bool {
	switch {
	case w.Everyone:
		return true
	case w.Team != "":
		return strings.EqualFold(w.Team, p.Team)
	case w.Office != "":
		return strings.EqualFold(w.Office, p.Office)
	}
	for _, id := range w.People {
		if id == p.ID {
			return true
		}
	}
	return false
}

// validate checks the alerts block, naming the first wrong key.
func (a *Alerts) validate() error {
	names := map[string]bool{}
	for i := range a.Targets {
		key := fmt.Sprintf("alerts.targets[%d]", i)
		t := &a.Targets[i]
		if err := uniqueName(key, t.Name, names, "target"); err != nil {
			return err
		}
		if err := t.validate(key); err != nil {
			return err
		}
	}
	rules := map[string]bool{}
	for i := range a.Rules {
		key := fmt.Sprintf("alerts.rules[%d]", i)
		r := &a.Rules[i]
		if err := uniqueName(key, r.Name, rules, "rule"); err != nil {
			return err
		}
		if err := r.validate(key, names); err != nil {
			return err
		}
	}
	return nil
}

// uniqueName checks that name is set and not used before, and notes it.
func uniqueName(key, name string, seen map[string]bool, what string) error {
	if name == "" {
		return fmt.Errorf("config %s.name: required", key)
	}
	if seen[name] {
		return fmt.Errorf("config %s.name: %q is used by another %s", key, name, what)
	}
	seen[name] = true
	return nil
}

func (t *Target) validate(key string) error {
	kinds := 0
	for _, u := range []struct {
		kind string
		t    *URLTarget
	}{{"webhook", t.Webhook}, {"slack", t.Slack}, {"teams", t.Teams}} {
		if u.t == nil {
			continue
		}
		kinds++
		parsed, err := url.Parse(u.t.URL)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return fmt.Errorf("config %s.%s.url: %q is not an http(s) URL", key, u.kind, u.t.URL)
		}
	}
	if t.Email != nil {
		kinds++
		if err := t.Email.validate(key + ".email"); err != nil {
			return err
		}
	}
	if kinds != 1 {
		return fmt.Errorf("config %s: set exactly one of webhook, slack, teams, email", key)
	}
	return nil
}

func (e *EmailTarget) validate(key string) error {
	if len(e.To) == 0 {
		return fmt.Errorf("config %s.to: at least one address is required", key)
	}
	for _, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("config %s.to: %q is not an e-mail address", key, to)
		}
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		return fmt.Errorf("config %s.from: %q is not an e-mail address", key, e.From)
	}
	if _, port, err := splitHostPort(e.SMTP); err != nil || port == "" {
		return fmt.Errorf("config %s.smtp: %q is not host:port", key, e.SMTP)
	}
	if (e.UsernameEnv == "") != (e.PasswordEnv == "") {
		return fmt.Errorf("config %s: set both username_env and password_env, or neither", key)
	}
	return nil
}

func (r *Rule) validate(key string, targets map[string]bool) error {
	watches, err := parseWatch(r.Watch)
	if err != nil {
		return fmt.Errorf("config %s.watch: %w", key, err)
	}
	r.Watches = watches
	if r.InactiveFor <= 0 {
		return fmt.Errorf("config %s.inactive_for: required, a duration such as 16h", key)
	}
	if r.Pending < 0 {
		return fmt.Errorf("config %s.pending: must not be negative", key)
	}
	if r.Repeat < 0 {
		return fmt.Errorf("config %s.repeat: must not be negative (0 sends no repeats)", key)
	}
	if len(r.Notify) == 0 {
		return fmt.Errorf("config %s.notify: name at least one target", key)
	}
	for _, n := range r.Notify {
		if !targets[n] {
			return fmt.Errorf("config %s.notify: %q is not a target of alerts.targets", key, n)
		}
	}
	return nil
}

// parseWatch reads a watch value: one selector or a list of them.
func parseWatch(v any) ([]Watch, error) {
	var items []any
	switch v := v.(type) {
	case nil:
		return nil, fmt.Errorf("required: {everyone: true}, {team: NAME}, {office: NAME}, {people: [ID, ...]} or a list of these")
	case []any:
		items = v
	default:
		items = []any{v}
	}
	out := make([]Watch, 0, len(items))
	for _, item := range items {
		m, ok := item.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("each selector is one of {everyone: true}, {team: NAME}, {office: NAME}, {people: [ID, ...]}")
		}
		w, err := parseSelector(m)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the list is empty")
	}
	return out, nil
}

func parseSelector(m map[string]any) (Watch, error) {
	var w Watch
	for k, v := range m {
		switch k {
		case "everyone":
			b, ok := v.(bool)
			if !ok || !b {
				return w, fmt.Errorf("everyone must be true")
			}
			w.Everyone = true
		case "team", "office":
			s, ok := v.(string)
			if !ok || s == "" {
				return w, fmt.Errorf("%s must name a %s", k, k)
			}
			if k == "team" {
				w.Team = s
			} else {
				w.Office = s
			}
		case "people":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return w, fmt.Errorf("people must list person ids")
			}
			for _, id := range list {
				s, ok := id.(string)
				if !ok || s == "" {
					return w, fmt.Errorf("people must list person ids")
				}
				w.People = append(w.People, s)
			}
		default:
			return w, fmt.Errorf("unknown selector %q (everyone, team, office, people)", k)
		}
	}
	return w, nil
}
