"""The schema ``invoice_sync`` as the catalog describes it, for comparing two databases.

Catalog queries, not pg_dump: the client's pg_dump need not match the server's version, and
these read exactly what a migration can change. Each names what it reads, in a stable order,
with nothing that differs between two databases built the same way (oids, counters, times).
"""

from __future__ import annotations

from typing import Any

import asyncpg

CATALOG: dict[str, str] = {
    "schema": """
        SELECT nspname, pg_get_userbyid(nspowner), nspacl::text[]
          FROM pg_namespace WHERE nspname = 'invoice_sync'""",
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
               c.relacl::text[], c.reloptions
          FROM pg_class c
         WHERE c.relnamespace = 'invoice_sync'::regnamespace
         ORDER BY c.relname""",
    "columns": """
        SELECT table_name, ordinal_position, column_name, data_type, udt_name, is_nullable,
               column_default, is_identity, identity_generation, identity_start,
               identity_increment, identity_maximum, identity_minimum, identity_cycle,
               is_generated, generation_expression, collation_name
          FROM information_schema.columns
         WHERE table_schema = 'invoice_sync'
         ORDER BY table_name, ordinal_position""",
    "column grants": """
        SELECT a.attrelid::regclass::text, a.attname, a.attacl::text[]
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'invoice_sync'::regnamespace AND a.attacl IS NOT NULL
         ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid),
               convalidated, condeferrable, condeferred
          FROM pg_constraint
         WHERE connamespace = 'invoice_sync'::regnamespace
         ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef
          FROM pg_indexes WHERE schemaname = 'invoice_sync'
         ORDER BY tablename, indexname""",
    "sequences": """
        SELECT sequencename, data_type::text, start_value, min_value, max_value, increment_by,
               cycle, cache_size
          FROM pg_sequences WHERE schemaname = 'invoice_sync'
         ORDER BY sequencename""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
               p.proacl::text[]
          FROM pg_proc p
         WHERE p.pronamespace = 'invoice_sync'::regnamespace
         ORDER BY 1, 2""",
    "triggers": """
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'invoice_sync'::regnamespace AND NOT t.tgisinternal
         ORDER BY 1, 2""",
    "policies": """
        SELECT tablename, policyname, permissive, roles::text[], cmd, qual, with_check
          FROM pg_policies WHERE schemaname = 'invoice_sync'
         ORDER BY tablename, policyname""",
    "comments": """
        SELECT d.classoid::regclass::text, coalesce(c.relname, p.proname), d.objsubid,
               d.description
          FROM pg_description d
          LEFT JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
          LEFT JOIN pg_proc p ON d.classoid = 'pg_proc'::regclass AND p.oid = d.objoid
         WHERE c.relnamespace = 'invoice_sync'::regnamespace
            OR p.pronamespace = 'invoice_sync'::regnamespace
         ORDER BY 1, 2, 3""",
}


async def describe(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each catalog query's rows, as tuples (arrays too, so rows can be compared as sets)."""
    conn = await asyncpg.connect(dsn)
    try:
        return {name: [_row(row) for row in await conn.fetch(sql)] for name, sql in CATALOG.items()}
    finally:
        await conn.close()


def _row(record: asyncpg.Record) -> tuple[Any, ...]:
    return tuple(tuple(value) if isinstance(value, list) else value for value in record)


def differences(expected: dict[str, list[tuple[Any, ...]]],
                actual: dict[str, list[tuple[Any, ...]]]) -> list[str]:  # fmt: skip
    """One line per row that only one side has, named by its catalog query."""
    lines = []
    for name in CATALOG:
        want, got = set(expected[name]), set(actual[name])
        lines += [f"{name}: migrations only: {row}" for row in sorted(want - got, key=repr)]
        lines += [f"{name}: schema.sql only: {row}" for row in sorted(got - want, key=repr)]
        if want == got and expected[name] != actual[name]:
            lines.append(f"{name}: the same rows, repeated or in another order")
    return lines
