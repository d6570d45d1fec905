package actor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// BusinessCentralConfig says how to read Business Central records back.
type BusinessCentralConfig struct {
	// BaseURL is what the notifications' resource paths are relative to:
	// https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}.
	// Empty turns the lookup off.
	BaseURL string `koanf:"base_url"`
	// Token is a fixed bearer token. Otherwise TokenURL, ClientID,
	// ClientSecret and Scope get one by OAuth client credentials
	// (https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token,
	// scope https://api.businesscentral.dynamics.com/.default).
	Token        string `koanf:"token"`
	TokenURL     string `koanf:"token_url"`
	ClientID     string `koanf:"client_id"`
	ClientSecret string `koanf:"client_secret"`
	Scope        string `koanf:"scope"`
	// UserFields are the record's fields that name the user of an update,
	// the first one set wins; a create tries systemCreatedBy first.
	// Empty means systemModifiedBy, lastModifiedBy.
	UserFields []string `koanf:"user_fields"`
}

// BusinessCentral reads the record of a notification's resource.
type BusinessCentral struct {
	cfg    BusinessCentralConfig
	client *http.Client
}

// NewBusinessCentral returns the fetcher; client carries the timeouts and
// transport (nil is http.DefaultClient).
func NewBusinessCentral(cfg BusinessCentralConfig, client *http.Client) *BusinessCentral {
	if client == nil {
		client = http.DefaultClient
	}
	if cfg.Token == "" && cfg.ClientID != "" {
		cc := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.TokenURL}
		if cfg.Scope != "" {
			cc.Scopes = []string{cfg.Scope}
		}
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
		client = cc.Client(ctx)
	}
	if len(cfg.UserFields) == 0 {
		cfg.UserFields = []string{"systemModifiedBy", "lastModifiedBy"}
	}
	return &BusinessCentral{cfg: cfg, client: client}
}

// User GETs BaseURL/resource and reads the user fields; Business Central
// writes user ids as GUIDs, which are given in lowercase.
func (b *BusinessCentral) User(ctx context.Context, resource string, e *crmpulse.Event) (string, error) {
	header := http.Header{}
	if b.cfg.Token != "" {
		header.Set("Authorization", "Bearer "+b.cfg.Token)
	}
	target := strings.TrimSuffix(b.cfg.BaseURL, "/") + "/" + strings.TrimPrefix(resource, "/")
	body, err := getJSON(ctx, b.client, target, header)
	if err != nil {
		return "", err
	}
	fields := b.cfg.UserFields
	if e.Action == crmpulse.Created {
		fields = append([]string{"systemCreatedBy"}, fields...)
	}
	user, err := firstField(body, fields)
	return strings.ToLower(user), err
}

// HubSpotConfig says how to read HubSpot records back.
type HubSpotConfig struct {
	// Token is a private app's access token (scopes crm.objects.*.read);
	// empty turns the lookup off.
	Token string `koanf:"token"`
	// BaseURL is the API's root; empty means https://api.hubapi.com.
	BaseURL string `koanf:"base_url"`
	// OwnerAsUser lets hubspot_owner_id stand for the user when the record
	// names no creating or updating user. Owner ids are not user ids: map
	// them in the directory's ids.hubspot before turning this on.
	OwnerAsUser bool `koanf:"owner_as_user"`
}

// HubSpot reads CRM objects by "objectType/objectId".
type HubSpot struct {
	cfg    HubSpotConfig
	client *http.Client
}

// NewHubSpot returns the fetcher; nil client is http.DefaultClient.
func NewHubSpot(cfg HubSpotConfig, client *http.Client) *HubSpot {
	if client == nil {
		client = http.DefaultClient
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.hubapi.com"
	}
	return &HubSpot{cfg: cfg, client: client}
}

// hubspotProperties are the properties asked for: who created, who last
// updated, and the owner.
const hubspotProperties = "hs_created_by_user_id,hs_updated_by_user_id,hubspot_owner_id"

// User GETs /crm/v3/objects/{objectType}/{objectId} and reads
// hs_created_by_user_id (a creation) or hs_updated_by_user_id.
func (h *HubSpot) User(ctx context.Context, resource string, e *crmpulse.Event) (string, error) {
	objectType, id, ok := strings.Cut(resource, "/")
	if !ok || objectType == "" || id == "" {
		return "", fmt.Errorf("hubspot: %q is not objectType/objectId", resource)
	}
	target := fmt.Sprintf("%s/crm/v3/objects/%s/%s?properties=%s", strings.TrimSuffix(h.cfg.BaseURL, "/"),
		url.PathEscape(objectType), url.PathEscape(id), hubspotProperties)
	body, err := getJSON(ctx, h.client, target, http.Header{"Authorization": {"Bearer " + h.cfg.Token}})
	if err != nil {
		return "", err
	}
	var object struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(body, &object); err != nil {
		return "", fmt.Errorf("hubspot: object: %w", err)
	}
	fields := []string{"hs_updated_by_user_id"}
	if e.Action == crmpulse.Created {
		fields = []string{"hs_created_by_user_id", "hs_updated_by_user_id"}
	}
	if h.cfg.OwnerAsUser {
		fields = append(fields, "hubspot_owner_id")
	}
	return firstField(object.Properties, fields)
}

// firstField returns the first of fields that the JSON object holds as a
// non-empty string or number.
func firstField(object []byte, fields []string) (string, error) {
	var values map[string]json.RawMessage
	if len(object) == 0 || string(object) == "null" {
		return "", errors.New("no object in the answer")
	}
	if err := json.Unmarshal(object, &values); err != nil {
		return "", fmt.Errorf("record: %w", err)
	}
	for _, f := range fields {
		var v ingest.Text
		if json.Unmarshal(values[f], &v) == nil && strings.TrimSpace(string(v)) != "" {
			return strings.TrimSpace(string(v)), nil
		}
	}
	return "", nil
}
