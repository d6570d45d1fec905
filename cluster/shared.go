package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/directory"
)

// BucketShared is the key-value bucket that holds what every node shares:
// the directory's people (person.<id in base64url>) and the settings
// (setting.<name>).
const BucketShared = "crmpulse-shared"

// Names of the shared settings.
const (
	// SettingPartitions is how many partitions the event topic has, as
	// the ingest or a worker found it in Kafka; the web nodes need it to
	// tell which partitions are missing from an answer.
	SettingPartitions = "partitions"
)

// Shared keeps a node's directory in step with the shared bucket: every
// person put in the bucket is applied to the local directory, and the
// directory's own Put writes to the bucket first (PUT /v1/users on any web
// node). Run owns the watch; the other methods may be called concurrently.
type Shared struct {
	kv     jetstream.KeyValue
	dir    *directory.Directory
	logger *slog.Logger
	ready  chan struct{}

	mu       sync.Mutex
	rev      uint64
	changed  chan struct{} // closed and replaced at each applied entry
	settings map[string]string
}

// OpenShared creates the bucket when it is missing and hooks dir to it.
// Call Run to apply what the bucket holds and what is put in it later.
func OpenShared(ctx context.Context, nc *nats.Conn, dir *directory.Directory, logger *slog.Logger) (*Shared, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketShared, History: 1,
		Description: "crmpulse: the directory and the settings every node needs"})
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", BucketShared, err)
	}
	s := &Shared{kv: kv, dir: dir, logger: logger.With("component", "shared"), ready: make(chan struct{}),
		changed: make(chan struct{}), settings: map[string]string{}}
	if dir != nil {
		dir.SetPublish(s.putPerson)
	}
	return s, nil
}

func personKey(id string) string { return "person." + base64.RawURLEncoding.EncodeToString([]byte(id)) }

func (s *Shared) putPerson(p crmpulse.Person) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	rev, err := s.kv.Put(ctx, personKey(p.ID), data)
	if err != nil {
		return fmt.Errorf("put %s: %w", BucketShared, err)
	}
	s.advance(rev)
	return nil
}

// PutSetting stores a shared setting.
func (s *Shared) PutSetting(ctx context.Context, name, value string) error {
	if _, err := s.kv.Put(ctx, "setting."+name, []byte(value)); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	return nil
}

// Setting returns a shared setting as last seen by Run.
func (s *Shared) Setting(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.settings[name]
	return v, ok
}

// Run applies the bucket's entries to the directory and the settings until
// ctx is done. Ready is closed once what the bucket held at the start is
// applied.
func (s *Shared) Run(ctx context.Context) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", BucketShared, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch of the shared bucket ended")
			}
			if e == nil {
				s.logger.Info("shared state loaded", "revision", s.Revision())
				close(s.ready)
				continue
			}
			s.apply(e)
		}
	}
}

func (s *Shared) apply(e jetstream.KeyValueEntry) {
	defer s.advance(e.Revision())
	if e.Operation() != jetstream.KeyValuePut {
		return // TODO(cluster): a deleted person stays in the directory; there is no DELETE /v1/users yet.
	}
	switch {
	case strings.HasPrefix(e.Key(), "person."):
		var p crmpulse.Person
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			s.logger.Error("shared person not readable", "key", e.Key(), "err", err)
			return
		}
		if s.dir != nil {
			if err := s.dir.Apply(p); err != nil {
				s.logger.Error("shared person not stored", "key", e.Key(), "err", err)
			}
		}
	case strings.HasPrefix(e.Key(), "setting."):
		s.mu.Lock()
		s.settings[strings.TrimPrefix(e.Key(), "setting.")] = string(e.Value())
		s.mu.Unlock()
	}
}

func (s *Shared) advance(rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev > s.rev {
		s.rev = rev
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// Ready is closed once Run has applied what the bucket held at its start.
func (s *Shared) Ready() <-chan struct{} { return s.ready }

// Revision returns the bucket revision the local directory has reached.
func (s *Shared) Revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// WaitRevision waits until the local directory has reached rev, or ctx is
// done; it reports whether it has.
func (s *Shared) WaitRevision(ctx context.Context, rev uint64) bool {
	for {
		s.mu.Lock()
		cur, changed := s.rev, s.changed
		s.mu.Unlock()
		if cur >= rev {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}
