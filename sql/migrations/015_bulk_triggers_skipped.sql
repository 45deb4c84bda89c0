-- A trusted bulk load (`invoice-sync enqueue`: SET LOCAL invoice_sync.bulk = on, by a role that
-- is not a producer, or by a superuser; 014) no longer calls either BEFORE INSERT trigger for
-- its rows. 014 let such a load past outbox_skip_synced's lookups, but both PL/pgSQL functions
-- were still called once per row to find that out, and for such a load neither changes a row:
-- the load leaves synced and cancelled keys out itself (its anti-join), and the clamp changes
-- only a producer's row (not a superuser's). The same rule as 014, now a WHEN condition, which
-- PostgreSQL evaluates per row as a plain expression, with no function call: a trigger fires
-- unless the flag is on and neither the session's login nor the current role is a member of
-- invoice_sync_producer (or the role is a superuser). The condition is asked for every row, as
-- the function asked it: a producer cannot turn it off part way through a statement (setting
-- the flag does not make it trusted, and it cannot change its login). The condition is written
-- out in each trigger: a function of ours would need EXECUTE granted to every inserting role.
CREATE OR REPLACE TRIGGER outbox_skip_synced BEFORE INSERT ON invoice_sync.outbox
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('invoice_sync.bulk', true) IS DISTINCT FROM 'on'
          OR (pg_catalog.current_setting('is_superuser') <> 'on'
              AND coalesce(pg_catalog.pg_has_role(session_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER')
                           OR pg_catalog.pg_has_role(current_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER'),
                           false)))
    EXECUTE FUNCTION invoice_sync.outbox_skip_synced();

CREATE OR REPLACE TRIGGER outbox_clamp_available_at BEFORE INSERT ON invoice_sync.outbox
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('invoice_sync.bulk', true) IS DISTINCT FROM 'on'
          OR (pg_catalog.current_setting('is_superuser') <> 'on'
              AND coalesce(pg_catalog.pg_has_role(session_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER')
                           OR pg_catalog.pg_has_role(current_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER'),
                           false)))
    EXECUTE FUNCTION invoice_sync.outbox_clamp_available_at();
