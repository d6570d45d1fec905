package jetstream

import (
	"context"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/stream/streamtest"
)

func TestConformance(t *testing.T) {
	// The one-process shape has one partition and one worker: no groups.
	streamtest.Run(t, streamtest.Options{Groups: false}, func(t *testing.T) streamtest.Backend {
		ns, nc, err := StartServer(ServerConfig{Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("StartServer: %v", err)
		}
		t.Cleanup(ns.Shutdown)
		t.Cleanup(nc.Close)
		connect := func(t *testing.T) *nats.Conn {
			t.Helper()
			c, err := nats.Connect("", nats.InProcessServer(ns))
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			t.Cleanup(c.Close)
			return c
		}
		return streamtest.Backend{
			Open: func(t *testing.T) crmpulse.Log {
				l, err := Open(t.Context(), connect(t), slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			},
			WriteRaw: func(t *testing.T, _ string, value []byte) {
				js, err := jetstream.New(connect(t))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := js.Publish(t.Context(), EventsSubject, value); err != nil {
					t.Fatalf("publish raw: %v", err)
				}
			},
			DeadLetters: func(ctx context.Context, t *testing.T, n int) []streamtest.DeadLetter {
				return deadLetters(ctx, t, connect(t), n)
			},
		}
	})
}

func deadLetters(ctx context.Context, t *testing.T, nc *nats.Conn, n int) []streamtest.DeadLetter {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("dead-letter consumer: %v", err)
	}
	var dead []streamtest.DeadLetter
	for len(dead) < n {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("reading dead letters: got %d, want %d: %v", len(dead), n, err)
		}
		dead = append(dead, streamtest.DeadLetter{Reason: m.Headers().Get(HeaderReason), Value: m.Data()})
	}
	return dead
}
