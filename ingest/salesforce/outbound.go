package salesforce

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/ingest"
)

// MaxNotifications is the most Notification elements one Outbound Message
// may hold, per the outbound-message WSDL.
const MaxNotifications = 100

// ack is the acknowledgement Salesforce needs; a bare 200 is not enough.
const ack = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` +
	`<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">` +
	`<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>`

// OutboundConfig holds the settings of the Outbound Message hook.
type OutboundConfig struct {
	// OrgID is the organisation id every message must carry, 15 or 18
	// characters (CRMPULSE_SALESFORCE_ORG_ID). Without it every message is
	// refused: Outbound Messages have no signature.
	OrgID string
	// CreatedByField names the sObject field that holds the creator, read
	// for a created event; default CreatedById.
	CreatedByField string
	// UpdatedByField names the sObject field that holds the last editor,
	// read for an updated event; default LastModifiedById.
	UpdatedByField string
}

// Outbound decodes SOAP Outbound Messages. It is safe for concurrent use.
type Outbound struct {
	cfg OutboundConfig
}

var _ ingest.Hook = (*Outbound)(nil)

// NewOutbound returns the Outbound Message hook.
func NewOutbound(cfg OutboundConfig) *Outbound {
	if cfg.CreatedByField == "" {
		cfg.CreatedByField = "CreatedById"
	}
	if cfg.UpdatedByField == "" {
		cfg.UpdatedByField = "LastModifiedById"
	}
	return &Outbound{cfg: cfg}
}

// Name returns "salesforce-outbound".
func (o *Outbound) Name() string { return "salesforce-outbound" }

type envelope struct {
	Notifications *struct {
		OrganizationID string         `xml:"OrganizationId"`
		Notification   []notification `xml:"Notification"`
	} `xml:"Body>notifications"`
}

type notification struct {
	ID      string `xml:"Id"`
	SObject struct {
		Type   string  `xml:"http://www.w3.org/2001/XMLSchema-instance type,attr"`
		Fields []field `xml:",any"`
	} `xml:"sObject"`
}

type field struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

// Decode checks the message's OrganizationId and makes one event per
// Notification that still holds data, answering with the SOAP Ack.
func (o *Outbound) Decode(r *http.Request, body []byte, now time.Time) (*ingest.Delivery, error) {
	var env envelope
	if err := xml.NewDecoder(bytes.NewReader(body)).Decode(&env); err != nil {
		return nil, ingest.BadRequest("cannot read the SOAP envelope: %v", err)
	}
	n := env.Notifications
	if n == nil {
		return nil, ingest.BadRequest("no notifications element in the SOAP body")
	}
	if o.cfg.OrgID == "" || !ingest.SecretEqual(id15(n.OrganizationID), id15(o.cfg.OrgID)) {
		return nil, ingest.Unauthorized("OrganizationId is not the configured CRMPULSE_SALESFORCE_ORG_ID")
	}
	if len(n.Notification) > MaxNotifications {
		return nil, ingest.BadRequest("%d notifications, more than %d", len(n.Notification), MaxNotifications)
	}

	d := &ingest.Delivery{Status: http.StatusOK, ContentType: "text/xml; charset=utf-8", Body: []byte(ack)}
	for i, nt := range n.Notification {
		if len(nt.SObject.Fields) == 0 {
			d.Ignore("notification without data")
			continue
		}
		e, err := o.event(ID18(n.OrganizationID), &nt)
		if err != nil {
			return nil, ingest.BadRequest("notification %d: %v", i, err)
		}
		d.Events = append(d.Events, e)
	}
	if err := ingest.Check(d.Events, now); err != nil {
		return nil, err
	}
	return d, nil
}

// event reads a notification's sObject: created when CreatedDate equals
// LastModifiedDate as instants, updated otherwise.
func (o *Outbound) event(tenant string, nt *notification) (crmpulse.Event, error) {
	values := map[string]string{}
	for _, f := range nt.SObject.Fields {
		values[f.XMLName.Local] = strings.TrimSpace(f.Value)
	}
	if values["Id"] == "" {
		return crmpulse.Event{}, fmt.Errorf("sObject has no Id")
	}
	created, err1 := ingest.ParseISO(values["CreatedDate"])
	modified, err2 := ingest.ParseISO(values["LastModifiedDate"])
	if err1 != nil || err2 != nil {
		return crmpulse.Event{}, fmt.Errorf("the outbound message must send CreatedDate and LastModifiedDate (%v, %v)", err1, err2)
	}

	_, object, _ := strings.Cut(nt.SObject.Type, ":")
	entity := entityName(object)
	e := crmpulse.Event{
		ID: nt.ID, Tenant: tenant, Source: Source,
		User:   ID18(values[o.cfg.UpdatedByField]),
		Entity: entity, Record: ID18(values["Id"]),
		RecordName: values["Name"],
		Action:     crmpulse.Updated, At: modified,
	}
	if created.Equal(modified) {
		e.Action, e.At, e.User = crmpulse.Created, created, ID18(values[o.cfg.CreatedByField])
	}
	if name := personName(values["FirstName"], values["LastName"]); name != "" &&
		(entity == crmpulse.Lead || entity == crmpulse.Contact) {
		e.RecordName = name
	}
	return e, nil
}

// id15 is the case-sensitive part of an id, so that 15- and 18-character
// forms of the same org compare equal.
func id15(id string) string {
	if len(id) == 18 {
		return id[:15]
	}
	return id
}
