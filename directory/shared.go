package directory

import "github.com/crmpulse/crmpulse"

// SetPublish makes Put share each person through publish (in the
// many-process shape, a put to the cluster's key-value bucket) before it
// stores the person here; a Put whose publish fails stores nothing. Call it
// before the directory is used concurrently.
func (d *Directory) SetPublish(publish func(crmpulse.Person) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.publish = publish
}

// Apply stores p exactly as another node's Put made it (its Added time
// included) without publishing it again: what a node does with each
// person it sees in the shared bucket.
func (d *Directory) Apply(p crmpulse.Person) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.storeLocked(p)
}
