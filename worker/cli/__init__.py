"""The `invoice-sync` command line: `main` builds the parser and dispatches; one module per
command family, each a thin wrapper over the engine and the store."""
