package actor

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/ingest/businesscentral"
	"github.com/crmpulse/crmpulse/ingest/hubspot"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

const (
	clientState = "cs-4f1c2a9e-example"
	company     = "5f0a3c1e-0000-4000-8000-00000000a001"
	created     = "5f0a3c1e-0000-4000-8000-00000000c101"
	userA       = "7D1F0C55-0000-4000-8000-0000000000AA"
)

// bcNotification is SOURCES.md §5.5: a create, a delete and a collection.
const bcNotification = `{"value":[
{"subscriptionId":"bc-sub-customers-01","clientState":"cs-4f1c2a9e-example","expirationDateTime":"2026-01-04T00:00:00Z","resource":"api/v2.0/companies(5f0a3c1e-0000-4000-8000-00000000a001)/customers(5f0a3c1e-0000-4000-8000-00000000c101)","changeType":"created","lastModifiedDateTime":"2026-01-01T00:00:31.120Z"},
{"subscriptionId":"bc-sub-customers-01","clientState":"cs-4f1c2a9e-example","expirationDateTime":"2026-01-04T00:00:00Z","resource":"api/v2.0/companies(5f0a3c1e-0000-4000-8000-00000000a001)/customers(5f0a3c1e-0000-4000-8000-00000000c102)","changeType":"deleted","lastModifiedDateTime":"2026-01-01T00:00:33.004Z"},
{"subscriptionId":"bc-sub-customers-01","clientState":"cs-4f1c2a9e-example","expirationDateTime":"2026-01-04T00:00:00Z","resource":"/api/v2.0/companies(5f0a3c1e-0000-4000-8000-00000000a001)/customers?$filter=lastModifiedDateTime%20gt%202026-01-01T00:00:00Z","changeType":"collection","lastModifiedDateTime":"2026-01-01T00:00:35.500Z"}]}`

// businessCentralAPI answers as Business Central's API v2.0 and Entra ID's
// token endpoint do: a client-credentials token, then the customer with its
// system fields, for that token only.
func businessCentralAPI(t *testing.T, tokens, gets *atomic.Int32) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tenant-1/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		r.ParseForm()
		id, secret, _ := r.BasicAuth()
		if id == "" {
			id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
		}
		if r.Form.Get("grant_type") != "client_credentials" || id != "crm-app" || secret != "app-secret" ||
			r.Form.Get("scope") != "https://api.businesscentral.dynamics.com/.default" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"token_type":"Bearer","expires_in":3599,"access_token":"bc-token-1"}`))
	})
	mux.HandleFunc("GET /v2.0/tenant-1/Production/api/v2.0/{path...}", func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if r.Header.Get("Authorization") != "Bearer bc-token-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.PathValue("path") != "companies("+company+")/customers("+created+")" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"code":"BadRequest_NotFound","message":"The Customer does not exist."}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		w.Write([]byte(`{"@odata.context":"ctx","@odata.etag":"W/\"JzE5OzEn\"","id":"` + created + `",` +
			`"number":"10000","displayName":"Zoë & Søn","lastModifiedDateTime":"2026-01-01T00:00:31.12Z",` +
			`"systemCreatedBy":"` + userA + `","systemModifiedBy":"` + userA + `"}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func decodeBC(t *testing.T) *ingest.Delivery {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/hooks/businesscentral", strings.NewReader(bcNotification))
	d, err := businesscentral.New(businesscentral.Config{ClientState: clientState}).Decode(r, []byte(bcNotification), ingesttest.Now)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBusinessCentralClientCredentials(t *testing.T) {
	var tokens, gets atomic.Int32
	srv := businessCentralAPI(t, &tokens, &gets)
	bc := NewBusinessCentral(BusinessCentralConfig{
		BaseURL: srv.URL + "/v2.0/tenant-1/Production", TokenURL: srv.URL + "/tenant-1/oauth2/v2.0/token",
		ClientID: "crm-app", ClientSecret: "app-secret", Scope: "https://api.businesscentral.dynamics.com/.default",
	}, srv.Client())
	reg := prometheus.NewRegistry()
	res := New(Config{}, map[string]Fetcher{businesscentral.Source: bc}, reg, slog.New(slog.DiscardHandler))

	d := decodeBC(t)
	res.Attribute(t.Context(), businesscentral.Source, d)
	if got, want := users(d), []string{strings.ToLower(userA), ""}; !equal(got, want) {
		t.Errorf("users: got %q, want %q (the create from systemCreatedBy, the delete not looked up)", got, want)
	}

	// The same delivery again is answered from the cache.
	d = decodeBC(t)
	res.Attribute(t.Context(), businesscentral.Source, d)
	if users(d)[0] != strings.ToLower(userA) || gets.Load() != 1 || tokens.Load() != 1 {
		t.Errorf("second delivery: user %q, %d record GETs and %d tokens, want 1 and 1", users(d)[0], gets.Load(), tokens.Load())
	}
	if got := testutil.ToFloat64(res.lookups.WithLabelValues(businesscentral.Source, "cached")); got != 1 {
		t.Errorf("cached lookups: %v, want 1", got)
	}
}

func TestBusinessCentralBearerToken(t *testing.T) {
	var tokens, gets atomic.Int32
	srv := businessCentralAPI(t, &tokens, &gets)
	bc := NewBusinessCentral(BusinessCentralConfig{BaseURL: srv.URL + "/v2.0/tenant-1/Production/", Token: "bc-token-1"}, nil)
	user, err := bc.User(t.Context(), "/api/v2.0/companies("+company+")/customers("+created+")",
		&crmpulse.Event{Action: crmpulse.Updated})
	if err != nil || user != strings.ToLower(userA) {
		t.Errorf("User = %q, %v; want %q from systemModifiedBy", user, err, strings.ToLower(userA))
	}
	_, err = bc.User(t.Context(), "api/v2.0/companies("+company+")/customers(00000000-0000-0000-0000-000000000000)",
		&crmpulse.Event{Action: crmpulse.Updated})
	if err != ErrNotFound {
		t.Errorf("a missing record: got %v, want ErrNotFound", err)
	}
}

// A source that fails or is slow leaves the events unattributed, within the
// timeout, and counts the failure.
func TestFailureLeavesUnattributed(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>sign in</html>")) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			bc := NewBusinessCentral(BusinessCentralConfig{BaseURL: srv.URL, Token: "t"}, srv.Client())
			res := New(Config{Timeout: 200 * time.Millisecond}, map[string]Fetcher{businesscentral.Source: bc},
				prometheus.NewRegistry(), slog.New(slog.DiscardHandler))

			d := decodeBC(t)
			start := time.Now()
			res.Attribute(t.Context(), businesscentral.Source, d)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Attribute took %v, past its 200ms timeout", elapsed)
			}
			if len(d.Events) != 2 || users(d)[0] != "" {
				t.Errorf("events %d, users %q: want both kept, unattributed", len(d.Events), users(d))
			}
			if got := testutil.ToFloat64(res.lookups.WithLabelValues(businesscentral.Source, "failed")); got != 1 {
				t.Errorf("failed lookups: %v, want 1", got)
			}
		})
	}
}

// hubspotAPI answers GET /crm/v3/objects/{objectType}/{objectId} as HubSpot
// does for a private app's token: the asked properties, as strings.
func hubspotAPI(t *testing.T) *httptest.Server {
	t.Helper()
	objects := map[string]string{
		"0-136/53000000003":    `{"hs_created_by_user_id":"2000001","hs_updated_by_user_id":"2000002","hubspot_owner_id":"9100"}`,
		"contacts/51000000009": `{"hs_created_by_user_id":"2000001","hs_updated_by_user_id":"2000003","hubspot_owner_id":"9100"}`,
		"deals/52000000004":    `{"hs_created_by_user_id":null,"hs_updated_by_user_id":"","hubspot_owner_id":"9100"}`,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crm/v3/objects/{type}/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer pat-na1-example" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"status":"error","category":"INVALID_AUTHENTICATION"}`))
			return
		}
		props, ok := objects[r.PathValue("type")+"/"+r.PathValue("id")]
		if !ok || r.URL.Query().Get("properties") != hubspotProperties {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"status":"error","category":"OBJECT_NOT_FOUND"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"` + r.PathValue("id") + `","properties":` + props +
			`,"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:02Z","archived":false}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// hubspotBatch has events without a user: an API creation of a lead, an
// import's contact update, a deal update by an integration, and one by a
// user, which is not looked up.
const hubspotBatch = `[
{"eventId":1,"subscriptionId":880003,"portalId":7700001,"appId":990001,"occurredAt":1767225602000,"subscriptionType":"object.creation","attemptNumber":0,"objectId":53000000003,"objectTypeId":"0-136","changeFlag":"CREATED","changeSource":"API"},
{"eventId":2,"subscriptionId":880004,"portalId":7700001,"appId":990001,"occurredAt":1767225603000,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":51000000009,"propertyName":"phone","propertyValue":"+34 600","changeSource":"IMPORT","sourceId":"import:42"},
{"eventId":3,"subscriptionId":880002,"portalId":7700001,"appId":990001,"occurredAt":1767225604000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":52000000004,"propertyName":"amount","propertyValue":"100","changeSource":"INTEGRATION","sourceId":"integration:7"},
{"eventId":4,"subscriptionId":880002,"portalId":7700001,"appId":990001,"occurredAt":1767225604500,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":52000000005,"propertyName":"amount","propertyValue":"200","changeSource":"CRM_UI","sourceId":"userId:2000004"}]`

func TestHubSpot(t *testing.T) {
	srv := hubspotAPI(t)
	for _, tt := range []struct {
		name  string
		cfg   HubSpotConfig
		users []string
	}{
		{"users only", HubSpotConfig{Token: "pat-na1-example", BaseURL: srv.URL}, []string{"2000001", "2000003", "", "2000004"}},
		{"owner as user", HubSpotConfig{Token: "pat-na1-example", BaseURL: srv.URL, OwnerAsUser: true},
			[]string{"2000001", "2000003", "9100", "2000004"}},
		{"wrong token", HubSpotConfig{Token: "pat-na1-revoked", BaseURL: srv.URL}, []string{"", "", "", "2000004"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const secret = "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
			r := httptest.NewRequest(http.MethodPost, "/v1/hooks/hubspot", strings.NewReader(hubspotBatch))
			r.Header.Set("X-HubSpot-Signature", hubspot.SignatureV1(secret, []byte(hubspotBatch)))
			d, err := hubspot.New(hubspot.Config{Secret: secret}).Decode(r, []byte(hubspotBatch), ingesttest.Now)
			if err != nil {
				t.Fatal(err)
			}
			res := New(Config{}, map[string]Fetcher{hubspot.Source: NewHubSpot(tt.cfg, srv.Client())},
				prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			res.Attribute(t.Context(), hubspot.Source, d)
			if got := users(d); !equal(got, tt.users) {
				t.Errorf("users: got %q, want %q", got, tt.users)
			}
		})
	}
}

// The handler applies the attributor before it appends.
func TestHandlerAttributes(t *testing.T) {
	var tokens, gets atomic.Int32
	srv := businessCentralAPI(t, &tokens, &gets)
	log := &memoryLog{}
	h := ingest.NewHandler(log, []ingest.Hook{businesscentral.New(businesscentral.Config{ClientState: clientState})},
		prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	bc := NewBusinessCentral(BusinessCentralConfig{BaseURL: srv.URL + "/v2.0/tenant-1/Production", Token: "bc-token-1"}, srv.Client())
	h.SetAttributor(New(Config{}, map[string]Fetcher{businesscentral.Source: bc}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hooks/{source}", h.ServeHook)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/hooks/businesscentral", strings.NewReader(bcNotification)))
	if w.Code != http.StatusAccepted || len(log.events) != 2 {
		t.Fatalf("answer %d, %d events appended; want 202 and 2", w.Code, len(log.events))
	}
	if log.events[0].User != strings.ToLower(userA) || log.events[1].User != "" {
		t.Errorf("appended users %q, %q", log.events[0].User, log.events[1].User)
	}
}

type memoryLog struct{ events []crmpulse.Event }

func (l *memoryLog) Append(_ context.Context, events []crmpulse.Event) error {
	l.events = append(l.events, events...)
	return nil
}

func (l *memoryLog) Consume(context.Context, crmpulse.ResumeFunc, crmpulse.BatchHandler) error {
	return nil
}

func (l *memoryLog) Close() error { return nil }

func users(d *ingest.Delivery) []string {
	var out []string
	for _, e := range d.Events {
		out = append(out, e.User)
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// FuzzFirstField reads any answer a source might give without panicking,
// and finds a user only where the answer holds one.
func FuzzFirstField(f *testing.F) {
	f.Add([]byte(`{"systemModifiedBy":"7d1f0c55-0000-4000-8000-0000000000aa"}`))
	f.Add([]byte(`{"hs_updated_by_user_id":2000002,"hubspot_owner_id":null}`))
	f.Add([]byte(`{"systemModifiedBy":{"id":1}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, answer []byte) {
		user, err := firstField(answer, []string{"systemModifiedBy", "hs_updated_by_user_id"})
		if err != nil && user != "" {
			t.Errorf("user %q with error %v", user, err)
		}
		if user != strings.TrimSpace(user) {
			t.Errorf("user %q not trimmed", user)
		}
	})
}
