"""The `pharos` command: the exporter, the demo service, and what assembles the stack."""
