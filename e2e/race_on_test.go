//go:build race

package e2e

// raceEnabled is true when the tests run with -race, which makes kfake (in
// the test process) several times slower.
const raceEnabled = true
