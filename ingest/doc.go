// Package ingest turns deliveries from outside (canonical events posted to
// /v1/events, CRM webhooks, CSV history) into canonical events on the log.
// It answers a sender with 2xx only after the log has stored every event of
// the delivery, and with a 4xx problem that names what is wrong otherwise.
package ingest
