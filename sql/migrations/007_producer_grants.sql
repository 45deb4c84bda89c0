-- Producers get least privilege, per login (sql/roles.sql sets the grants around it); and
-- replicas announce the accounts they work, so rows nobody works can be told apart (at the end).
--
-- A login that is a member of the invoice_sync_producer group (and not a superuser) is limited
-- to the accounts granted to it in producer_account: row-level security on outbox, synced and
-- dead_letter lets it write and read only those accounts' rows. The check lives in the database,
-- so a plain INSERT INTO outbox (which producers are promised) and enqueue() are held to it
-- alike; a SECURITY DEFINER enqueue() alone would have left the INSERT open or taken it away.
-- Every other role is not restricted by these policies: the worker, the schema owner (who
-- bypasses row-level security anyway) and roles an operator made for themselves.
--
-- The group is looked up by name in pg_roles rather than named in a policy, because migrations
-- run before sql/roles.sql creates the groups; in a database without the group nobody is
-- restricted. The membership test is an uncorrelated subquery, evaluated once per statement,
-- so the worker's claim pays nothing per row for it.

CREATE TABLE invoice_sync.producer_account (
    login      text        NOT NULL CHECK (length(login) BETWEEN 1 AND 63),
    account    text        NOT NULL CHECK (length(account) BETWEEN 1 AND 200),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (login, account)
);

-- The policies read producer_account with the querying role's rights, so every role that reads
-- or writes the three tables needs SELECT on it (a worker between this migration and the rerun
-- of roles.sql included). Its own policy shows a producer only its own grants.
GRANT SELECT ON invoice_sync.producer_account TO PUBLIC;
ALTER TABLE invoice_sync.producer_account ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    -- True when the querying role is a restricted producer.
    producer constant text := $sql$
        EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                 WHERE me.rolname = current_user AND NOT me.rolsuper
                   AND g.rolname = 'invoice_sync_producer'
                   AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER'))
    $sql$;
    tab text;
BEGIN
    EXECUTE format(
        'CREATE POLICY own_grants ON invoice_sync.producer_account FOR SELECT'
        ' USING (login = current_user OR NOT %s)', producer);
    FOREACH tab IN ARRAY ARRAY['outbox', 'synced', 'dead_letter'] LOOP
        EXECUTE format('ALTER TABLE invoice_sync.%I ENABLE ROW LEVEL SECURITY', tab);
        -- USING filters what a producer reads; as the WITH CHECK of an INSERT it refuses a row
        -- for another account with "new row violates row-level security policy".
        EXECUTE format(
            'CREATE POLICY producer_accounts ON invoice_sync.%I'
            ' USING (NOT %s OR account IN (SELECT p.account FROM invoice_sync.producer_account p'
            '                               WHERE p.login = current_user))', tab, producer);
    END LOOP;
END $$;

-- A producer may schedule a row for later, not for earlier: an available_at in the past would
-- put its rows ahead of every other producer's. Raised to the time of the insert
-- (clock_timestamp(), not now(): a transaction held open for an hour would otherwise backdate
-- its rows by that hour). The worker and the owner keep the past (replays, backfills).
CREATE FUNCTION invoice_sync.outbox_clamp_available_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.available_at < clock_timestamp() AND EXISTS (
        SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
         WHERE me.rolname = current_user AND NOT me.rolsuper
           AND g.rolname = 'invoice_sync_producer'
           AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER')) THEN
        NEW.available_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER outbox_clamp_available_at BEFORE INSERT ON invoice_sync.outbox
    FOR EACH ROW EXECUTE FUNCTION invoice_sync.outbox_clamp_available_at();

-- Functions are executable by PUBLIC unless revoked; sql/roles.sql grants each group what it
-- needs. Trigger functions need no EXECUTE to fire. A migration that adds a function must
-- revoke it too (tests/integration/store/roles/test_grants.py checks the migrated schema):
-- ALTER DEFAULT PRIVILEGES cannot do it for one schema, since per-schema defaults only add to
-- the global PUBLIC grant.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA invoice_sync FROM PUBLIC;

-- Upgrading must not stop producers that work today (their order transactions would fail):
-- each existing producer login is granted every account it could already have written rows
-- for. Narrow these grants afterwards; logins created from now on start with none.
INSERT INTO invoice_sync.producer_account (login, account)
SELECT me.rolname, known.account
  FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g,
       (SELECT account FROM invoice_sync.outbox
        UNION SELECT account FROM invoice_sync.synced
        UNION SELECT account FROM invoice_sync.dead_letter) known
 WHERE g.rolname = 'invoice_sync_producer' AND me.oid <> g.oid AND NOT me.rolsuper
   AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER')
ON CONFLICT DO NOTHING;

-- The accounts some running replica is configured for. Each replica announces its accounts at
-- start and again on every metrics refresh, pushing expires_at forward; an account whose last
-- replica stopped (or was reconfigured) drops out when its announcement runs out. Rows of an
-- account not in here (a producer's typo, an account removed from the config) are claimed by
-- nobody: the KEDA query leaves them out (more replicas would not move them), and the
-- invoice_sync_unconfigured_pending_invoices gauge and `status` show them instead.
CREATE TABLE invoice_sync.replica_account (
    account      text        PRIMARY KEY CHECK (length(account) BETWEEN 1 AND 200),
    announced_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Replicas of this version announce as soon as they start, which may be before the operator
-- reruns sql/roles.sql: where the worker group exists, it gets its rights on the new table now
-- (roles.sql grants the same), so the upgrade does not stop the metrics nor the KEDA query.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, INSERT, UPDATE ON invoice_sync.replica_account TO invoice_sync_worker;
    END IF;
END $$;
