"""Front ends: the ways users meet looseends (pytest, unittest; later the CLI and HTTP)."""
