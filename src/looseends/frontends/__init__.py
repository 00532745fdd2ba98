"""Front ends: the ways users meet looseends (pytest, unittest, the command line, HTTP, signals, metrics)."""
