// Package stack writes runtime.Stack(all) from inside a test, where testing's own goroutines run beside
// the test's leak: what goleak ignores by default, in a real dump.
package stack

import (
	"os"
	"os/signal"
	"runtime"
	"testing"
)

func TestDump(t *testing.T) {
	signal.Notify(make(chan os.Signal, 1), os.Interrupt) // starts os/signal's loop goroutine
	results := make(chan int)
	go func() { results <- 1 }()
	runtime.Gosched()
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	if err := os.WriteFile(os.Getenv("STACK_OUT"), buf[:n], 0o644); err != nil {
		t.Fatal(err)
	}
}
