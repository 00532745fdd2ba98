module example.com/goleakdata

go 1.27

// regenerate.sh points this at a checkout of github.com/uber-go/goleak (GOLEAK_DIR) in a temporary copy.
require go.uber.org/goleak v1.3.0
