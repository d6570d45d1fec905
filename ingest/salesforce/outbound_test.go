package salesforce

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest/ingesttest"
)

// message is an Outbound Message from orgID holding the given notifications.
func message(org string, notifications ...string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
		`<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">` +
		`<OrganizationId>` + org + `</OrganizationId><ActionId>04k7R0000000ActQAE</ActionId>` +
		strings.Join(notifications, "") + `</notifications></soapenv:Body></soapenv:Envelope>`)
}

// sobject is a Notification of an sObject of the given type and fields.
func sobject(typ, fields string) string {
	return `<Notification><Id>04l7R00000NtfB1QAJ</Id><sObject xsi:type="sf:` + typ +
		`" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">` + fields + `</sObject></Notification>`
}

const opportunity = `<sf:Id>0067R00000Fake2</sf:Id><sf:Name>Big deal</sf:Name>` +
	`<sf:CreatedById>0057R00000UsrA1QAJ</sf:CreatedById><sf:CreatedDate>2026-01-01T00:00:00Z</sf:CreatedDate>` +
	`<sf:LastModifiedById>0057R00000UsrB2QAJ</sf:LastModifiedById><sf:OwnerId>0057R00000UsrC3QAJ</sf:OwnerId>`

func TestOutbound(t *testing.T) {
	tests := []struct {
		name    string
		cfg     OutboundConfig
		body    []byte
		status  int
		want    []crmpulse.Event
		ignored int
	}{
		{"created when the dates agree", OutboundConfig{OrgID: orgID},
			message(orgID, sobject("Opportunity", opportunity+`<sf:LastModifiedDate>2026-01-01T00:00:00.000+00:00</sf:LastModifiedDate>`)),
			0, []crmpulse.Event{{Action: crmpulse.Created, User: "0057R00000UsrA1QAJ", Record: "0067R00000Fake2QAB", RecordName: "Big deal", Entity: "opportunity"}}, 0},
		{"updated, configured actor", OutboundConfig{OrgID: orgID, UpdatedByField: "OwnerId"},
			message(orgID, sobject("Opportunity", opportunity+`<sf:LastModifiedDate>2026-01-01T00:01:00Z</sf:LastModifiedDate>`)),
			0, []crmpulse.Event{{Action: crmpulse.Updated, User: "0057R00000UsrC3QAJ", Record: "0067R00000Fake2QAB", RecordName: "Big deal", Entity: "opportunity"}}, 0},
		{"15-character org id configured", OutboundConfig{OrgID: orgID[:15]},
			message(orgID, sobject("Account", opportunity+`<sf:LastModifiedDate>2026-01-01T00:01:00Z</sf:LastModifiedDate>`)),
			0, []crmpulse.Event{{Action: crmpulse.Updated, User: "0057R00000UsrB2QAJ", Record: "0067R00000Fake2QAB", RecordName: "Big deal", Entity: "account"}}, 0},
		{"deleted before delivery", OutboundConfig{OrgID: orgID},
			message(orgID, sobject("Lead", "")), 0, nil, 1},
		{"wrong org", OutboundConfig{OrgID: orgID}, message("00D7R0000000OthUAE"), 401, nil, 0},
		{"no org configured", OutboundConfig{}, message(orgID), 401, nil, 0},
		{"not XML", OutboundConfig{OrgID: orgID}, []byte("<soapenv:Envelope"), 400, nil, 0},
		{"not notifications", OutboundConfig{OrgID: orgID}, []byte("<a/>"), 400, nil, 0},
		{"no dates", OutboundConfig{OrgID: orgID}, message(orgID, sobject("Lead", "<sf:Id>00Q7R00000Fake1UAB</sf:Id>")), 400, nil, 0},
		{"no id", OutboundConfig{OrgID: orgID}, message(orgID, sobject("Lead", "<sf:Name>x</sf:Name>")), 400, nil, 0},
		{"too many", OutboundConfig{OrgID: orgID},
			message(orgID, strings.Repeat(sobject("Lead", ""), 101)), 400, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/hooks/salesforce-outbound", strings.NewReader(string(tt.body)))
			d, err := NewOutbound(tt.cfg).Decode(r, tt.body, now)
			if got := ingesttest.Status(err); got != tt.status {
				t.Fatalf("status %d (%v), want %d", got, err, tt.status)
			}
			if err != nil {
				return
			}
			if len(d.Events) != len(tt.want) || d.Ignored["notification without data"] != tt.ignored {
				t.Fatalf("events %+v ignored %v", d.Events, d.Ignored)
			}
			for i, w := range tt.want {
				e := d.Events[i]
				if e.Action != w.Action || e.User != w.User || e.Record != w.Record ||
					e.RecordName != w.RecordName || e.Entity != w.Entity || e.Source != "salesforce" {
					t.Errorf("got %+v, want %+v", e, w)
				}
			}
		})
	}
}
