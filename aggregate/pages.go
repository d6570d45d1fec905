package aggregate

// ReleasePages takes the pages of Badger's mapped files out of the
// process's resident set (see dropTablePages) and returns how many bytes
// of mappings it covered. Servers call it every few seconds, since
// compactions keep mapping tables as the state grows.
func (s *Store) ReleasePages() int {
	if s.db.Opts().InMemory {
		return 0
	}
	return dropTablePages(s.db.Opts().Dir)
}
