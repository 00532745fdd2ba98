// Command leaky starts goroutines that leak in the ways PATTERNS.md names, then prints goroutine dumps
// in the formats looseends reads. Run by tests/data/go/regenerate.sh; see tests/data/go/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	// goleak's own output is made by ../goleak, built against the real goleak.
	"sync"
	"time"
)

// doJobs is the article's leak: an unbuffered result channel the caller stops reading after a timeout.
func doJobs(jobs int) error {
	results := make(chan int)
	for i := 0; i < jobs; i++ {
		go func(n int) {
			time.Sleep(time.Duration(n) * time.Millisecond)
			results <- n * n // forgotten sender: nobody receives after the timeout
		}(i)
	}
	select {
	case <-results:
		return nil
	case <-time.After(time.Nanosecond):
		return errors.New("timeout")
	}
}

func abandonedReceiver() {
	jobs := make(chan int)
	go func() {
		for range jobs { // abandoned receiver: nobody sends or closes
		}
	}()
}

var mu sync.Mutex

func lockedForever() {
	mu.Lock()
	go func() {
		mu.Lock() // never released
	}()
}

func waitGroupForever() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		wg.Wait()
	}()
}

func selectNoCancel(ctx context.Context) {
	ticker := time.NewTicker(time.Hour)
	pprof.Do(ctx, pprof.Labels("worker", "ticker"), func(context.Context) {
		go func() {
			for {
				select {
				case <-ticker.C:
				}
			}
		}()
	})
}

func sleeper() {
	go func() {
		for {
			time.Sleep(time.Hour)
		}
	}()
}

func main() {
	mode := "dumps"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	_ = doJobs(5)
	abandonedReceiver()
	lockedForever()
	waitGroupForever()
	selectNoCancel(context.Background())
	sleeper()
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	switch mode {
	case "dumps":
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		os.WriteFile("stack_all.txt", buf[:n], 0o644)
		f, _ := os.Create("pprof_debug1.txt")
		pprof.Lookup("goroutine").WriteTo(f, 1)
		f.Close()
		f, _ = os.Create("pprof_debug2.txt")
		pprof.Lookup("goroutine").WriteTo(f, 2)
		f.Close()
		f, _ = os.Create("pprof_debug0.pb.gz")
		pprof.Lookup("goroutine").WriteTo(f, 0)
		f.Close()
		if p := pprof.Lookup("goroutineleak"); p != nil {
			f, _ = os.Create("goroutineleak_debug2.txt")
			p.WriteTo(f, 2)
			f.Close()
			f, _ = os.Create("goroutineleak_debug1.txt")
			p.WriteTo(f, 1)
			f.Close()
			f, _ = os.Create("goroutineleak_debug0.pb.gz")
			p.WriteTo(f, 0)
			f.Close()
		}
	case "panic":
		panic("leaky: giving up")
	case "serve":
		// Serves net/http/pprof on loopback; every 50 ms another forgotten sender.
		go func() {
			for {
				_ = doJobs(2)
				time.Sleep(50 * time.Millisecond)
			}
		}()
		listener, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			panic(err)
		}
		fmt.Println("http://" + listener.Addr().String() + "/debug/pprof/")
		http.Serve(listener, nil)
	}
}
