"""Shipped test doubles: the provider sandboxes and PostgreSQL for tests, the demo and the
bench. Imported only by the `sandbox` and `demo` commands and by tests, never by `run`."""
