"""The pytest plugin: hooks and flags (`plugin`, `settings`), loaded with every run; the checks
(`checks`, `fixtures`, `failures`), loaded only when they are turned on."""

__all__: list[str] = []  # the modules are the interface
