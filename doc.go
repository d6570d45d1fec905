// Package crmpulse holds the domain of the live CRM user-activity report: the
// canonical change event, the people it is counted for, the periods a report
// covers, and the small interfaces between the roles (ingest, stream,
// aggregate, web). It imports none of the role packages.
package crmpulse
