// Package verify holds tests that fail goleak.VerifyNone: their `go test` logs are test data.
package verify

import (
	"context"
	"runtime/pprof"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// The article's leak: senders nobody receives from.
func TestForgottenSender(t *testing.T) {
	defer goleak.VerifyNone(t)
	results := make(chan int)
	for i := 0; i < 3; i++ {
		go func(n int) { results <- n }(i)
	}
}

// A receiver nobody sends to, started under pprof labels.
func TestLabelledReceiver(t *testing.T) {
	defer goleak.VerifyNone(t)
	jobs := make(chan int)
	pprof.Do(context.Background(), pprof.Labels("tenant", "t1"), func(context.Context) {
		go func() {
			for range jobs {
			}
		}()
	})
}

// Passes: what it starts, it stops.
func TestClean(t *testing.T) {
	defer goleak.VerifyNone(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { wg.Done() }()
	wg.Wait()
}
