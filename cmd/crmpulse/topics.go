package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/config"
	"github.com/crmpulse/crmpulse/ingest/topics"
)

// topicReaders returns a reader for each change-topic block of the
// configuration that names brokers: Debezium's tables, Salesforce CDC.
//
// TODO(topics): the change topics' brokers take no TLS or SASL settings
// yet; the kafka_tls and kafka_sasl_* keys are for crmpulse's own log.
func topicReaders(cfg *config.Config, evlog crmpulse.Log, reg prometheus.Registerer, logger *slog.Logger) ([]*topics.Reader, error) {
	var configs []topics.Config
	if rc, ok := cfg.Debezium.Reader(); ok {
		configs = append(configs, rc)
	}
	if rc, ok := cfg.SalesforceKafka.Reader(cfg.SalesforceOrgID); ok {
		configs = append(configs, rc)
	}
	var readers []*topics.Reader
	for _, rc := range configs {
		rd, err := topics.New(rc, evlog, logger, reg)
		if err != nil {
			return nil, err
		}
		readers = append(readers, rd)
	}
	return readers, nil
}

// runReaders runs the readers on wg until ctx is done; a reader that stops
// on its own (its log closed) is logged, and the others go on.
func runReaders(ctx context.Context, wg *sync.WaitGroup, readers []*topics.Reader, logger *slog.Logger) {
	for _, rd := range readers {
		wg.Go(func() {
			if err := rd.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("change-topic reader stopped", "err", err)
			}
		})
	}
}
