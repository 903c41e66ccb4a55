"""The `alert-engine` command: one module per command group."""
