// Command find prints goleak.Find's error for a program with leaks: the raw text, outside any test log.
package main

import (
	"fmt"

	"go.uber.org/goleak"
)

func main() {
	results := make(chan int)
	for i := 0; i < 2; i++ {
		go func(n int) { results <- n }(i)
	}
	done := make(chan struct{})
	go func() { <-done }()
	if err := goleak.Find(); err != nil {
		fmt.Println(err)
	}
}
