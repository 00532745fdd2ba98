// Package testmain checks the whole package with goleak.VerifyTestMain: the test passes, the run fails.
package testmain

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var mu sync.Mutex

// Passes, but leaves a ticker loop and a goroutine waiting for a lock behind.
func TestLeavesTwo(t *testing.T) {
	ticker := time.NewTicker(time.Hour)
	go func() {
		for {
			select {
			case <-ticker.C:
			}
		}
	}()
	mu.Lock()
	go func() { mu.Lock() }()
}
