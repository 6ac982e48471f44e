"""The ``skft`` command: one module per command group."""
