"""Analysis: pure functions from snapshots to verdicts: baseline, ignore rules, settling, patterns, groups."""
