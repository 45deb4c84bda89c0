"""The only code that runs SQL: the connection pool, named queries, migrations, LISTEN, and
one store per table family (outbox, accounts, dead letters, read-only stats)."""
