package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/alert"
	"github.com/crmpulse/crmpulse/auth"
	"github.com/crmpulse/crmpulse/problem"
)

// SetAlerts connects the server to the alert evaluator that GET /v1/alerts
// reads; without one the route lists no rules.
func (s *Server) SetAlerts(e *alert.Evaluator) { s.alerts = e }

func (s *Server) serveAlerts(w http.ResponseWriter, r *http.Request) {
	if s.alerts == nil {
		writeJSON(w, http.StatusOK, alert.Snapshot{Rules: []alert.RuleView{}, States: []alert.State{}})
		return
	}
	snap := s.alerts.Snapshot()
	p := principal(r)
	visible := snap.States[:0:0]
	for _, st := range snap.States {
		if st.Person == nil || s.seesID(p, st.Person.ID) {
			visible = append(visible, st)
		}
	}
	snap.States = visible
	writeJSON(w, http.StatusOK, snap)
}

// seesID reports whether p may see the person with the id; a person not in
// the directory is seen only by those who see everyone.
func (s *Server) seesID(p auth.Principal, id string) bool {
	person, ok := s.dir.Get(id)
	if !ok {
		return s.visibleTeam(p) == ""
	}
	return s.sees(p, person)
}

// BroadcastAlert sends {"type": "alert", "alert": st} to every websocket
// client, whatever view it watches. It does not block: a client whose
// queue is full is dropped with a resync, as for deltas.
func (h *Hub) BroadcastAlert(st alert.State) {
	data, err := json.Marshal(map[string]any{"type": "alert", "alert": st})
	if err != nil {
		h.logger.Error("encode alert", "err", err)
		return
	}
	msg := prepare(data)
	team := ""
	if st.Person != nil {
		if person, ok := h.srv.dir.Get(st.Person.ID); ok {
			team = person.Team
		}
	}
	for _, v := range h.allViews() {
		// A view bound to a team (a manager's) hears only of its people.
		if vt := v.params.Get("team"); vt != "" && !strings.EqualFold(vt, team) {
			continue
		}
		v.mu.Lock()
		for c := range v.clients {
			c.send(msg)
		}
		v.mu.Unlock()
	}
}

// unmappedUser is one item of GET /v1/users/unmapped.
type unmappedUser struct {
	ID           string    `json:"id"`
	Source       string    `json:"source"`
	User         string    `json:"user"`
	LastActivity time.Time `json:"last_activity"`
}

// serveUnmapped lists the SOURCE:USER ids that acted since `since`
// (default 90 days ago) and map to no person. Mapping one is a PUT of a
// person whose ids name it; the report then moves its whole history.
func (s *Server) serveUnmapped(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	since := now.AddDate(0, 0, -90)
	if raw := r.URL.Query().Get("since"); raw != "" {
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil || !t.Before(now) {
			detail := "must be an RFC 3339 instant in the past"
			problem.Write(w, http.StatusBadRequest, "the query parameters are not valid",
				[]crmpulse.FieldError{{Field: "since", Detail: detail}})
			return
		}
		since = t
	}
	items := []unmappedUser{}
	for _, a := range s.store.LastActivity(s.dir, "", since, now) {
		if a.Status != crmpulse.StatusUnmapped {
			continue
		}
		source, user, _ := strings.Cut(a.ID, ":")
		items = append(items, unmappedUser{ID: a.ID, Source: source, User: user, LastActivity: a.Last})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}
