//go:build !linux

package aggregate

// dropTablePages does nothing where there is no /proc/self/maps; see the
// Linux version.
func dropTablePages(string) int { return 0 }
