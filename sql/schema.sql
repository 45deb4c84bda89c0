-- invoice-sync: the whole schema `invoice_sync` as the migrations in sql/migrations leave it
-- (001 to 008, 012), in one place, to read: every table with its columns, constraints and indexes,
-- the functions and triggers, the row-level security policies and the privileges the
-- migrations set. Comments say what each part is for; the migration that added a part says
-- why in more depth.
--
-- To read, not to install: `invoice-sync migrate` builds and upgrades a database (it records
-- each migration in schema_migrations, which this file leaves empty, and moves data where a
-- migration says so). Roles and their grants are in sql/roles.sql, applied after migrating.
--
-- Keeping it true: a migration that changes the schema changes this file in the same commit,
-- where the object is defined (a column added by ALTER TABLE goes last in its table: column
-- order follows the migrations; a function body is copied character for character). Then run
--     python -m pytest tests/integration/store/test_schema_snapshot.py
-- which applies the migrations to one new database and this file to another, compares their
-- catalogs (columns, constraints, indexes, functions, triggers, policies, privileges) and lists
-- every row in which they differ.

CREATE SCHEMA IF NOT EXISTS invoice_sync;

-- The migrations applied, one row each (worker/store/migrate.py creates this table itself,
-- before the first migration). A replica refuses to start on a schema older than its code.
CREATE TABLE invoice_sync.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);


-- ---------------------------------------------------------------------------------------------
-- outbox: the rows producers write, one invoice each, until they are synced or dead-lettered.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE invoice_sync.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account          text        NOT NULL CHECK (length(account) BETWEEN 1 AND 200),
    idempotency_key  text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    payload          jsonb       NOT NULL,
    -- Not before this time. A producer's value in the past becomes now() (trigger below).
    available_at     timestamptz NOT NULL DEFAULT now(),
    -- Columns below are the worker's; producers leave them to their defaults.
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running')),
    attempts         integer     NOT NULL DEFAULT 0,
    -- True from the moment an attempt starts until its outcome is known to have created nothing.
    -- A row reclaimed after a crash still has it set, so the next attempt takes a safe path.
    outcome_unknown  boolean     NOT NULL DEFAULT false,
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    first_attempt_at timestamptz,
    replayed_from    bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- One more at every claim, never less: an outcome is recorded only if it belongs to the
    -- row's latest claim (the attempt count can go back down, so it cannot fence). 005.
    claims           bigint      NOT NULL DEFAULT 0,
    CONSTRAINT outbox_account_key UNIQUE (account, idempotency_key),
    -- 256 KiB of JSON text (worker.invoice MAX_PAYLOAD_BYTES): a row is read at every claim. 006.
    CONSTRAINT outbox_payload_at_most_256_kib CHECK (octet_length(payload::text) <= 262144)
);

-- The claim reads due pending rows per account in (available_at, id) order; the index holds
-- only pending rows so it stays small however many rows are in flight.
CREATE INDEX outbox_claim_idx ON invoice_sync.outbox (account, available_at, id)
    WHERE state = 'pending';
-- Due rows whose last outcome is unknown are claimed first, while what that attempt may have
-- created is recent; this index holds only those rows. 004.
CREATE INDEX outbox_settle_idx ON invoice_sync.outbox (account, available_at, id)
    WHERE state = 'pending' AND outcome_unknown;
-- The lease rescue looks only at running rows.
CREATE INDEX outbox_lease_idx ON invoice_sync.outbox (lease_expires_at) WHERE state = 'running';

-- A key that is already synced is never sent again, whoever inserts it and however.
CREATE FUNCTION invoice_sync.outbox_skip_synced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM invoice_sync.synced s
               WHERE s.account = NEW.account AND s.idempotency_key = NEW.idempotency_key) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER outbox_skip_synced BEFORE INSERT ON invoice_sync.outbox
    FOR EACH ROW EXECUTE FUNCTION invoice_sync.outbox_skip_synced();

-- A producer may schedule a row for later, not for earlier: an available_at in the past would
-- put its rows ahead of every other producer's. Raised to the time of the insert, not the
-- transaction's start. The worker and the owner keep the past (replays, backfills). 007.
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

-- One NOTIFY per inserting statement (not per row) wakes idle workers.
CREATE FUNCTION invoice_sync.outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('invoice_sync_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON invoice_sync.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.outbox_notify();

-- Producers' entry point: idempotent, returns the row id (the existing one for a repeated key,
-- including a key that has already been synced).
CREATE FUNCTION invoice_sync.enqueue(
    p_account text,
    p_idempotency_key text,
    p_payload jsonb,
    p_available_at timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, available_at)
    VALUES (p_account, p_idempotency_key, p_payload, coalesce(p_available_at, now()))
    ON CONFLICT (account, idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM invoice_sync.outbox
         WHERE account = p_account AND idempotency_key = p_idempotency_key;
    END IF;
    IF v_id IS NULL THEN
        SELECT outbox_id INTO v_id FROM invoice_sync.synced
         WHERE account = p_account AND idempotency_key = p_idempotency_key;
    END IF;
    RETURN v_id;
END $$;


-- ---------------------------------------------------------------------------------------------
-- Where finished rows go: synced (the provider has the invoice) or dead_letter (a human decides).
-- Both keep the outbox row's id.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE invoice_sync.synced (
    outbox_id           bigint      PRIMARY KEY,
    account             text        NOT NULL,
    idempotency_key     text        NOT NULL,
    provider            text        NOT NULL,
    provider_invoice_id text        NOT NULL,
    invoice_number      text,
    link                text,
    pdf_url             text,
    attempts            integer     NOT NULL,
    -- Found at the provider after an attempt whose outcome was unknown, not created by it.
    recovered           boolean     NOT NULL DEFAULT false,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    response            jsonb,
    CONSTRAINT synced_account_key UNIQUE (account, idempotency_key)
);

-- `status --watch` counts rows finished since it began; INCLUDE makes it an index-only scan.
CREATE INDEX synced_synced_at_idx ON invoice_sync.synced (synced_at) INCLUDE (account);

CREATE TABLE invoice_sync.dead_letter (
    outbox_id        bigint      PRIMARY KEY,
    account          text        NOT NULL,
    idempotency_key  text        NOT NULL,
    payload          jsonb       NOT NULL,
    reason           text        NOT NULL CHECK (reason IN (
        'credits_expired', 'duplicate', 'rejected', 'invalid_payload', 'auth_failed',
        'forbidden', 'exhausted', 'ambiguous')),
    error            text        NOT NULL,
    http_status      integer,
    response         jsonb,
    attempts         integer     NOT NULL,
    first_attempt_at timestamptz,
    dead_at          timestamptz NOT NULL DEFAULT now(),
    -- Set by `dlq replay`: when, and the outbox row it became.
    replayed_at      timestamptz,
    replayed_to      bigint
);

CREATE INDEX dead_letter_reason_idx ON invoice_sync.dead_letter (reason, dead_at);
CREATE INDEX dead_letter_account_idx ON invoice_sync.dead_letter (account, dead_at);
-- `status --watch`, `dlq list` (newest first) and `dlq purge --older-than`.
CREATE INDEX dead_letter_dead_at_idx ON invoice_sync.dead_letter (dead_at)
    INCLUDE (account, reason);


-- ---------------------------------------------------------------------------------------------
-- State every replica shares, per account.
-- ---------------------------------------------------------------------------------------------

-- A pause written by one replica stops claims in all of them.
CREATE TABLE invoice_sync.account_state (
    account      text        PRIMARY KEY,
    paused       boolean     NOT NULL DEFAULT false,
    pause_reason text,
    pause_error  text,
    paused_at    timestamptz,
    -- When the next probe may run; null for an operator's pause, which only resume ends.
    probe_at     timestamptz,
    -- A provider's Retry-After: claims for the account wait until then.
    throttled_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A token bucket per account: the deployment-wide rate limit. The claim (queries.sql
-- `outbox_claim`) refills it, takes one token per row it leases and leases no row it has no
-- token for. The rate and burst are the claiming replica's configuration.
CREATE TABLE invoice_sync.rate_bucket (
    account     text             PRIMARY KEY,
    tokens      double precision NOT NULL,
    rate        double precision NOT NULL CHECK (rate > 0),  -- tokens per second
    burst       double precision NOT NULL CHECK (burst >= 1),
    granted     integer          NOT NULL DEFAULT 0,         -- tokens the last claim took
    refilled_at timestamptz      NOT NULL
);

-- The bucket's level now: what it held plus what refilled since, capped at the burst.
-- clock_timestamp(), not now(): a claim that waited on the row lock must not count its own
-- transaction's start as "now" and lose the tokens that refilled while it waited.
CREATE FUNCTION invoice_sync.rate_bucket_level(
    tokens double precision, refilled_at timestamptz, rate double precision,
    burst double precision
) RETURNS double precision LANGUAGE sql VOLATILE AS $$
    SELECT least(burst, tokens + rate * greatest(0, extract(epoch FROM clock_timestamp() - refilled_at)))
$$;

-- The accounts some running replica is configured for: each replica announces its accounts at
-- start and on every metrics refresh, pushing expires_at forward. Rows of an account not in
-- here are claimed by nobody; the KEDA query leaves them out, and the gauge
-- invoice_sync_unconfigured_pending_invoices and `status` show them. 007.
CREATE TABLE invoice_sync.replica_account (
    account      text        PRIMARY KEY CHECK (length(account) BETWEEN 1 AND 200),
    announced_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);


-- ---------------------------------------------------------------------------------------------
-- History: one row per provider attempt, one row per operator action. 008.
-- ---------------------------------------------------------------------------------------------

-- Written by the flush that records the outcome; pruned after attempt_retention. One attempt
-- per claim of an outbox row. `calls`: the attempt's other provider requests (logins, lookups,
-- tag scans), never a body. `response`: bounded and scrubbed at the provider seam.
CREATE TABLE invoice_sync.attempt (
    outbox_id        bigint      NOT NULL,
    claim            bigint      NOT NULL,
    account          text        NOT NULL,
    idempotency_key  text        NOT NULL,
    attempt          integer     NOT NULL,
    worker           text        NOT NULL,
    provider         text,
    started_at       timestamptz NOT NULL,
    duration_ms      integer     NOT NULL CHECK (duration_ms >= 0),
    http_status      integer,
    outcome          text        NOT NULL CHECK (outcome IN (
        'synced', 'recovered', 'retry', 'rate_limited', 'dead_letter', 'paused', 'released',
        'rescued', 'cancelled')),
    reason           text,
    error            text,
    response         jsonb,
    outcome_unknown  boolean     NOT NULL,
    calls            jsonb,
    PRIMARY KEY (outbox_id, claim)
);
-- One key's attempts, across replays (`show`, the console's invoice page).
CREATE INDEX attempt_key_idx ON invoice_sync.attempt (account, idempotency_key, started_at);
-- Pruning and recent-attempt reads; rows arrive in time order, so BRIN stays tiny.
CREATE INDEX attempt_started_brin ON invoice_sync.attempt USING brin (started_at);

-- Operators' actions, append-only. `actor`: console login or os-user@host; `target`: the ids or
-- filter given (JSON); `rows`: how many rows the action touched.
CREATE TABLE invoice_sync.audit (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action  text        NOT NULL CHECK (action ~ '^[a-z][a-z_.-]{0,63}$'),
    target  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    rows    integer     NOT NULL DEFAULT 0 CHECK (rows >= 0),
    reason  text        CHECK (length(reason) <= 2000)
);
CREATE INDEX audit_at_idx ON invoice_sync.audit (at);


-- ---------------------------------------------------------------------------------------------
-- Producers: the accounts each producer login may write and read (row-level security). 007.
-- ---------------------------------------------------------------------------------------------

-- One row per (login, account) granted; the schema owner inserts and deletes them.
CREATE TABLE invoice_sync.producer_account (
    login      text        NOT NULL CHECK (length(login) BETWEEN 1 AND 63),
    account    text        NOT NULL CHECK (length(account) BETWEEN 1 AND 200),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (login, account)
);

-- The policies below read producer_account with the querying role's rights, so every role that
-- reads or writes the tables they guard needs SELECT on it. Its own policy shows a producer
-- only its own grants.
GRANT SELECT ON invoice_sync.producer_account TO PUBLIC;
ALTER TABLE invoice_sync.producer_account ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON invoice_sync.producer_account FOR SELECT
    USING (login = current_user
           OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                           WHERE me.rolname = current_user AND NOT me.rolsuper
                             AND g.rolname = 'invoice_sync_producer'
                             AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER')));

-- A login that is a member of invoice_sync_producer (and not a superuser) writes and reads only
-- its granted accounts' rows in outbox, synced and dead_letter: as the WITH CHECK of an INSERT,
-- the USING refuses a row for another account. Every other role is not restricted (the worker,
-- and the owner, who bypasses row-level security anyway). The group is found by name, so in a
-- database without it nobody is restricted; the subquery is evaluated once per statement.
ALTER TABLE invoice_sync.outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY producer_accounts ON invoice_sync.outbox
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                        WHERE me.rolname = current_user AND NOT me.rolsuper
                          AND g.rolname = 'invoice_sync_producer'
                          AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER'))
           OR account IN (SELECT p.account FROM invoice_sync.producer_account p
                           WHERE p.login = current_user));

ALTER TABLE invoice_sync.synced ENABLE ROW LEVEL SECURITY;
CREATE POLICY producer_accounts ON invoice_sync.synced
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                        WHERE me.rolname = current_user AND NOT me.rolsuper
                          AND g.rolname = 'invoice_sync_producer'
                          AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER'))
           OR account IN (SELECT p.account FROM invoice_sync.producer_account p
                           WHERE p.login = current_user));

ALTER TABLE invoice_sync.dead_letter ENABLE ROW LEVEL SECURITY;
CREATE POLICY producer_accounts ON invoice_sync.dead_letter
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                        WHERE me.rolname = current_user AND NOT me.rolsuper
                          AND g.rolname = 'invoice_sync_producer'
                          AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER'))
           OR account IN (SELECT p.account FROM invoice_sync.producer_account p
                           WHERE p.login = current_user));


-- ---------------------------------------------------------------------------------------------
-- Accounts held in the database (`invoice-sync accounts add|update|remove`). 012.
-- ---------------------------------------------------------------------------------------------

-- Non-secret settings in `options` (checked by the provider's options model before the CLI
-- writes them); secrets only as AES-GCM ciphertext (nonce first, the name as associated data)
-- with the id of the key that encrypted them. The name rule is the config's.
CREATE TABLE invoice_sync.account (
    name           text        PRIMARY KEY
                               CHECK (length(name) BETWEEN 1 AND 100 AND btrim(name) <> ''
                                      AND name !~ '[[:cntrl:]]'),
    provider       text        NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
    options        jsonb       NOT NULL DEFAULT '{}'::jsonb
                               CHECK (jsonb_typeof(options) = 'object'),
    rate_limit     text        NOT NULL DEFAULT '60/minute' CHECK (length(rate_limit) <= 50),
    concurrency    integer     NOT NULL DEFAULT 4 CHECK (concurrency BETWEEN 1 AND 1000),
    enabled        boolean     NOT NULL DEFAULT true,
    secret         bytea       CHECK (length(secret) <= 16384),
    secret_key_id  text        CHECK (length(secret_key_id) <= 32),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text        NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 200),
    CHECK ((secret IS NULL) = (secret_key_id IS NULL))
);
-- rotate-key's batches: the rows not yet under the new key.
CREATE INDEX account_secret_key_idx ON invoice_sync.account (secret_key_id);

-- One NOTIFY per changing statement: replicas reload their accounts (empty payload).
CREATE FUNCTION invoice_sync.account_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('invoice_sync_account', '');
    RETURN NULL;
END $$;

CREATE TRIGGER account_notify AFTER INSERT OR UPDATE OR DELETE ON invoice_sync.account
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.account_notify();


-- ---------------------------------------------------------------------------------------------
-- Privileges the migrations set (sql/roles.sql grants each group the rest).
-- ---------------------------------------------------------------------------------------------

-- No function is executable by PUBLIC; trigger functions need no EXECUTE to fire.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA invoice_sync FROM PUBLIC;

-- Where the worker group exists already, it may announce its accounts before roles.sql is
-- rerun after the upgrade that added replica_account (roles.sql grants the same).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, INSERT, UPDATE ON invoice_sync.replica_account TO invoice_sync_worker;
    END IF;
END $$;

-- The same for the history tables of 008 (roles.sql grants the same).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, INSERT, DELETE ON invoice_sync.attempt TO invoice_sync_worker;
        GRANT SELECT, INSERT ON invoice_sync.audit TO invoice_sync_worker;
    END IF;
END $$;

-- The same for the account table of 012 (roles.sql grants the same).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.account TO invoice_sync_worker;
    END IF;
END $$;
