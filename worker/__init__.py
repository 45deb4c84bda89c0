"""invoice-sync: turns rows in a PostgreSQL outbox into invoices at an invoicing provider."""

__version__ = "0.2.0"
