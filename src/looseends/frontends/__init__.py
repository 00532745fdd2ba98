"""Front ends: the ways users meet looseends (pytest, unittest, the command line, HTTP, signals, metrics)."""

__all__: list[str] = []  # the modules are the interface
