"""Analysis: pure functions from snapshots to verdicts: baseline, ignore rules, settling, patterns, groups."""

__all__: list[str] = []  # the modules are the interface
