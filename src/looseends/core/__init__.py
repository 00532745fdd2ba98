"""Composition, internal: the sources, analysis and reports put together into what front ends call
(a watch from baseline to verdict, `check()`, `find()`, the canary, a session's ledger, growth across
samples). The public names are re-exported by `looseends` itself."""

__all__: list[str] = []  # the modules are the interface
