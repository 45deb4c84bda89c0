-- invoice-sync: the whole schema `invoice_sync` as the migrations in sql/migrations leave it
-- (001 to 017), in one place, to read: every table with its columns, constraints and
-- indexes, the functions and triggers, the row-level security policies and the privileges the
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
    CONSTRAINT outbox_payload_at_most_256_kib CHECK (octet_length(payload::text) <= 262144),
    -- The producer's W3C trace context (optional): each attempt's span continues its trace.
    -- Version 00, lowercase hex, neither id all zeros; anything else is refused. 011.
    traceparent      text
        CONSTRAINT outbox_traceparent_is_w3c CHECK (
            traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
            AND substr(traceparent, 4, 32) <> '00000000000000000000000000000000'
            AND substr(traceparent, 37, 16) <> '0000000000000000')
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

-- A key that is already synced or cancelled is never sent again, whoever inserts it and however;
-- nor one whose open dead letter says an attempt may have reached the provider (017), but for
-- a replay's row (replayed_from). The claim checks the same (an insert racing a flush).
-- A bulk load that leaves such keys out itself (SET LOCAL invoice_sync.bulk = on) skips the
-- per-row check, unless its login or role is a producer (014): neither BEFORE trigger below is
-- then called for its rows (their WHEN condition, asked per row without a function call, 015).
CREATE FUNCTION invoice_sync.outbox_skip_synced() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    producers regrole;
BEGIN
    IF pg_catalog.current_setting('invoice_sync.bulk', true) = 'on' THEN
        IF pg_catalog.current_setting('is_superuser') = 'on' THEN
            RETURN NEW;
        END IF;
        producers := pg_catalog.to_regrole('invoice_sync_producer');
        IF producers IS NULL
           OR NOT (pg_catalog.pg_has_role(session_user, producers, 'MEMBER')
                   OR pg_catalog.pg_has_role(current_user, producers, 'MEMBER')) THEN
            RETURN NEW;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM invoice_sync.synced s
               WHERE s.account = NEW.account AND s.idempotency_key = NEW.idempotency_key)
       OR EXISTS (SELECT 1 FROM invoice_sync.cancelled c
                  WHERE c.account = NEW.account AND c.idempotency_key = NEW.idempotency_key)
       OR (NEW.replayed_from IS NULL
           AND EXISTS (SELECT 1 FROM invoice_sync.dead_letter d
                        WHERE d.account = NEW.account
                          AND d.idempotency_key = NEW.idempotency_key
                          AND d.replayed_at IS NULL AND d.outcome_unknown)) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER outbox_skip_synced BEFORE INSERT ON invoice_sync.outbox
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('invoice_sync.bulk', true) IS DISTINCT FROM 'on'
          OR (pg_catalog.current_setting('is_superuser') <> 'on'
              AND coalesce(pg_catalog.pg_has_role(session_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER')
                           OR pg_catalog.pg_has_role(current_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER'),
                           false)))
    EXECUTE FUNCTION invoice_sync.outbox_skip_synced();

-- A producer may schedule a row for later, not for earlier: an available_at in the past would
-- put its rows ahead of every other producer's. Raised to the time of the insert, not the
-- transaction's start. The worker and the owner keep the past (replays, backfills). 007;
-- the membership asked of the role cache first, pg_roles only for members, 013.
CREATE FUNCTION invoice_sync.outbox_clamp_available_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    producers constant regrole := pg_catalog.to_regrole('invoice_sync_producer');
BEGIN
    IF NEW.available_at < clock_timestamp() AND producers IS NOT NULL
       AND pg_catalog.pg_has_role(current_user, producers, 'MEMBER') THEN
        IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
            NEW.available_at := clock_timestamp();
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER outbox_clamp_available_at BEFORE INSERT ON invoice_sync.outbox
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('invoice_sync.bulk', true) IS DISTINCT FROM 'on'
          OR (pg_catalog.current_setting('is_superuser') <> 'on'
              AND coalesce(pg_catalog.pg_has_role(session_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER')
                           OR pg_catalog.pg_has_role(current_user,
                               pg_catalog.to_regrole('invoice_sync_producer'), 'MEMBER'),
                           false)))
    EXECUTE FUNCTION invoice_sync.outbox_clamp_available_at();

-- One NOTIFY per inserting statement (not per row) wakes idle workers.
CREATE FUNCTION invoice_sync.outbox_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('invoice_sync_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON invoice_sync.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.outbox_notify();

-- Producers' entry point: idempotent, returns the row id (the existing one for a repeated key,
-- including a key that has already been synced or cancelled, or whose open dead letter's
-- outcome is unknown: 017). A malformed p_traceparent is
-- refused with an error naming it, before anything is written.
CREATE FUNCTION invoice_sync.enqueue(
    p_account text,
    p_idempotency_key text,
    p_payload jsonb,
    p_available_at timestamptz DEFAULT NULL,
    p_traceparent text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_traceparent IS NOT NULL AND NOT (
        p_traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
        AND substr(p_traceparent, 4, 32) <> '00000000000000000000000000000000'
        AND substr(p_traceparent, 37, 16) <> '0000000000000000') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            MESSAGE = 'invoice_sync.enqueue: p_traceparent is not a W3C traceparent',
            DETAIL = format('got %L; expected 00-<32 hex trace id>-<16 hex parent id>-<2 hex '
                            'flags>, lowercase, neither id all zeros', left(p_traceparent, 80)),
            SCHEMA = 'invoice_sync', TABLE = 'outbox', COLUMN = 'traceparent',
            CONSTRAINT = 'outbox_traceparent_is_w3c';
    END IF;
    INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, available_at, traceparent)
    VALUES (p_account, p_idempotency_key, p_payload, coalesce(p_available_at, now()),
            p_traceparent)
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
    IF v_id IS NULL THEN
        SELECT outbox_id INTO v_id FROM invoice_sync.cancelled
         WHERE account = p_account AND idempotency_key = p_idempotency_key;
    END IF;
    IF v_id IS NULL THEN
        SELECT max(outbox_id) INTO v_id FROM invoice_sync.dead_letter
         WHERE account = p_account AND idempotency_key = p_idempotency_key
           AND replayed_at IS NULL AND outcome_unknown;
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
-- The console's invoice search by invoice number or provider id. 009.
CREATE INDEX synced_invoice_number_idx ON invoice_sync.synced (invoice_number);
CREATE INDEX synced_provider_invoice_id_idx ON invoice_sync.synced (provider_invoice_id);

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
    replayed_to      bigint,
    -- The outbox row's traceparent, which a replay carries back. 011.
    traceparent      text,
    -- An attempt may have reached the provider (the worker did not know its outcome): while
    -- the dead letter is open, its key is not enqueued again (outbox_skip_synced). 017.
    outcome_unknown  boolean     NOT NULL DEFAULT false
);

CREATE INDEX dead_letter_reason_idx ON invoice_sync.dead_letter (reason, dead_at);
CREATE INDEX dead_letter_account_idx ON invoice_sync.dead_letter (account, dead_at);
-- `status --watch`, `dlq list` (newest first) and `dlq purge --older-than`.
CREATE INDEX dead_letter_dead_at_idx ON invoice_sync.dead_letter (dead_at)
    INCLUDE (account, reason);
-- `show ACCOUNT KEY`: a key's dead letters (one per replay that died again). 008.
CREATE INDEX dead_letter_key_idx ON invoice_sync.dead_letter (account, idempotency_key);
-- The console: search by number, open dead letters by account and reason. 009.
CREATE INDEX dead_letter_number_idx ON invoice_sync.dead_letter ((payload->>'number'))
    WHERE replayed_at IS NULL;
CREATE INDEX dead_letter_open_reason_idx ON invoice_sync.dead_letter (account, reason)
    WHERE replayed_at IS NULL;
-- A key's open dead letter whose outcome is unknown holds the key (the insert trigger, the bulk
-- load and each claimed row look it up). 017.
CREATE INDEX dead_letter_open_unknown_idx ON invoice_sync.dead_letter (account, idempotency_key)
    WHERE replayed_at IS NULL AND outcome_unknown;

-- Rows withdrawn by cancel() before they were sent, with their payload and reason; the key
-- cannot be enqueued again (outbox_skip_synced). 010.
CREATE TABLE invoice_sync.cancelled (
    outbox_id       bigint      PRIMARY KEY,
    account         text        NOT NULL,
    idempotency_key text        NOT NULL,
    payload         jsonb       NOT NULL,
    reason          text        CHECK (length(reason) <= 2000),
    attempts        integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    cancelled_at    timestamptz NOT NULL DEFAULT now(),
    -- The login that called cancel() (the CLI's operator is in the audit log).
    cancelled_by    text        NOT NULL,
    CONSTRAINT cancelled_account_key UNIQUE (account, idempotency_key)
);
CREATE INDEX cancelled_cancelled_at_idx ON invoice_sync.cancelled (cancelled_at) INCLUDE (account);


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
-- its granted accounts' rows in outbox, synced, dead_letter and cancelled (010): as the WITH CHECK
-- of an INSERT, the USING refuses a row for another account. Every other role is not restricted
-- (the worker, and the owner, who bypasses row-level security anyway). The group is found by name,
-- so in a database without it nobody is restricted; the subquery is evaluated once per statement.
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

ALTER TABLE invoice_sync.cancelled ENABLE ROW LEVEL SECURITY;
CREATE POLICY producer_accounts ON invoice_sync.cancelled
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                        WHERE me.rolname = current_user AND NOT me.rolsuper
                          AND g.rolname = 'invoice_sync_producer'
                          AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER'))
           OR account IN (SELECT p.account FROM invoice_sync.producer_account p
                           WHERE p.login = current_user));


-- ---------------------------------------------------------------------------------------------
-- What producers get back: result(), cancel(), and NOTIFY invoice_sync_result when rows reach a
-- final state. result() and cancel() are SECURITY DEFINER and check their caller by session_user
-- (a restricted producer sees only its granted accounts; any other answers `unknown`). 010.
-- ---------------------------------------------------------------------------------------------

-- True when the session's login is a restricted producer (member of invoice_sync_producer, not a
-- superuser) that was not granted p_account. Called only by the SECURITY DEFINER functions
-- below; session_user, not current_user, since inside them current_user is the schema owner.
CREATE FUNCTION invoice_sync.caller_lacks_account(p_account text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                    WHERE me.rolname = session_user AND NOT me.rolsuper
                      AND g.rolname = 'invoice_sync_producer'
                      AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER'))
       AND NOT EXISTS (SELECT FROM invoice_sync.producer_account p
                        WHERE p.login = session_user AND p.account = p_account)
$$;

-- One key's outcome. A key lives in at most one of outbox and synced (both unique); a dead
-- letter that was replayed lives on as the row its replay made, which is looked at first, so the
-- answer follows the replay. `in_flight` is an attempt under way, or an earlier attempt whose
-- outcome is unknown and whose settling attempt has not finished (the invoice may exist).
CREATE FUNCTION invoice_sync.result(p_account text, p_idempotency_key text)
RETURNS TABLE (
    state               text,
    provider_invoice_id text,
    invoice_number      text,
    link                text,
    pdf_url             text,
    reason              text,
    error               text,
    attempts            integer,
    updated_at          timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(found.state, 'unknown'), found.provider_invoice_id, found.invoice_number,
           found.link, found.pdf_url, found.reason, found.error, found.attempts,
           found.updated_at
      FROM (SELECT) AS one
      LEFT JOIN LATERAL (
        SELECT * FROM (
            SELECT 1 AS rank, 'synced' AS state, s.provider_invoice_id, s.invoice_number,
                   s.link, s.pdf_url, NULL::text AS reason, NULL::text AS error, s.attempts,
                   s.synced_at AS updated_at
              FROM invoice_sync.synced s
             WHERE s.account = p_account AND s.idempotency_key = p_idempotency_key
            UNION ALL
            SELECT 2, CASE WHEN o.state = 'running' OR o.outcome_unknown THEN 'in_flight'
                           ELSE 'pending' END,
                   NULL, NULL, NULL, NULL, NULL, o.last_error, o.attempts, o.updated_at
              FROM invoice_sync.outbox o
             WHERE o.account = p_account AND o.idempotency_key = p_idempotency_key
            UNION ALL
            SELECT 3, 'cancelled', NULL, NULL, NULL, NULL, c.reason, NULL, c.attempts,
                   c.cancelled_at
              FROM invoice_sync.cancelled c
             WHERE c.account = p_account AND c.idempotency_key = p_idempotency_key
            UNION ALL
            SELECT * FROM (
                SELECT 4, 'dead', NULL, NULL, NULL, NULL, d.reason, d.error, d.attempts,
                       d.dead_at
                  FROM invoice_sync.dead_letter d
                 WHERE d.account = p_account AND d.idempotency_key = p_idempotency_key
                 ORDER BY d.replayed_at IS NULL DESC, d.dead_at DESC
                 LIMIT 1
            ) newest_dead
        ) candidates
         ORDER BY rank
         LIMIT 1
      ) found ON NOT invoice_sync.caller_lacks_account(p_account)
$$;

-- Withdraw a row not yet sent; the resulting state (see docs/producers.md):
--   cancelled  the row was pending and is now withdrawn (or was cancelled before)
--   in_flight  an attempt is under way, or an earlier one's outcome is unknown: nothing changed
--   synced, dead  too late;  unknown  no such key (or an account the caller may not see)
-- Race-safe with the claim: the claim locks with FOR UPDATE SKIP LOCKED and sets state
-- 'running' in the same statement. FOR UPDATE here (waiting, not skipping) either locks the row
-- first, so the claim skips it and finds it gone, or waits for the claim to commit and then
-- re-reads the row, now 'running'. The DELETE repeats the condition on the locked row.
CREATE FUNCTION invoice_sync.cancel(
    p_account text,
    p_idempotency_key text,
    p_reason text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_row invoice_sync.outbox%ROWTYPE;
BEGIN
    IF p_account IS NULL OR p_account = '' THEN
        RAISE EXCEPTION 'invoice_sync.cancel: account must not be null or empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_idempotency_key IS NULL OR p_idempotency_key = '' THEN
        RAISE EXCEPTION 'invoice_sync.cancel: idempotency_key must not be null or empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF invoice_sync.caller_lacks_account(p_account) THEN
        RETURN 'unknown';
    END IF;
    SELECT * INTO v_row FROM invoice_sync.outbox o
     WHERE o.account = p_account AND o.idempotency_key = p_idempotency_key
       FOR UPDATE;
    IF FOUND THEN
        -- outcome_unknown: an earlier attempt may have created the invoice; withdrawing the row
        -- now would leave an invoice nobody records. Its settling attempt decides first.
        IF v_row.state <> 'pending' OR v_row.outcome_unknown THEN
            RETURN 'in_flight';
        END IF;
        DELETE FROM invoice_sync.outbox o
         WHERE o.id = v_row.id AND o.state = 'pending' AND NOT o.outcome_unknown;
        INSERT INTO invoice_sync.cancelled (outbox_id, account, idempotency_key, payload, reason,
                                            attempts, created_at, cancelled_by)
        VALUES (v_row.id, v_row.account, v_row.idempotency_key, v_row.payload,
                left(p_reason, 2000), v_row.attempts, v_row.created_at, session_user);
        RETURN 'cancelled';
    END IF;
    -- Gone from the outbox (or never there): each statement reads a new snapshot, so a row
    -- that a flush moved while this waited on its lock is found where it went.
    IF EXISTS (SELECT FROM invoice_sync.synced s
                WHERE s.account = p_account AND s.idempotency_key = p_idempotency_key) THEN
        RETURN 'synced';
    END IF;
    IF EXISTS (SELECT FROM invoice_sync.cancelled c
                WHERE c.account = p_account AND c.idempotency_key = p_idempotency_key) THEN
        RETURN 'cancelled';
    END IF;
    IF EXISTS (SELECT FROM invoice_sync.dead_letter d
                WHERE d.account = p_account AND d.idempotency_key = p_idempotency_key) THEN
        RETURN 'dead';
    END IF;
    RETURN 'unknown';
END $$;

-- ---------------------------------------------------------------------------------------------
-- NOTIFY invoice_sync_result when rows reach a final state and that commits.
-- ---------------------------------------------------------------------------------------------

-- Notifications skipped because the notification queue was over half full (or over the share
-- set in invoice_sync.result_notify_max_usage): a listener that never reads holds the queue,
-- and a full queue would fail the commits that notify. `status` shows the count; a sequence,
-- so counting takes no row lock between concurrent flushes.
CREATE SEQUENCE invoice_sync.result_notify_skipped;

-- One call per inserting statement (one per flush), with the statement's rows as a transition
-- table; TG_ARGV[0] is the state the rows reached. The payload is small and holds no invoice
-- data: a listener calls result() for the details.
CREATE FUNCTION invoice_sync.result_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- The setting lets an operator move the threshold (ALTER DATABASE ... SET), and tests
    -- reach the skipping path without filling gigabytes of queue.
    v_limit constant float8 := coalesce(
        nullif(current_setting('invoice_sync.result_notify_max_usage', true), '')::float8, 0.5);
    v_skipped bigint;
BEGIN
    IF pg_catalog.pg_notification_queue_usage() > v_limit THEN
        SELECT count(nextval('invoice_sync.result_notify_skipped')) INTO v_skipped
          FROM finished;
        IF v_skipped > 0 THEN
            RAISE WARNING 'invoice_sync: % result notifications skipped: the notification queue is % full (a LISTEN session is not reading)',
                v_skipped, round(pg_catalog.pg_notification_queue_usage()::numeric * 100) || '%';
        END IF;
        RETURN NULL;
    END IF;
    PERFORM pg_catalog.pg_notify('invoice_sync_result', json_build_object(
                'account', f.account, 'idempotency_key', f.idempotency_key,
                'state', TG_ARGV[0], 'outbox_id', f.outbox_id)::text)
       FROM finished f;
    RETURN NULL;
END $$;

CREATE TRIGGER synced_notify AFTER INSERT ON invoice_sync.synced
    REFERENCING NEW TABLE AS finished
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.result_notify('synced');
CREATE TRIGGER dead_letter_notify AFTER INSERT ON invoice_sync.dead_letter
    REFERENCING NEW TABLE AS finished
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.result_notify('dead');
CREATE TRIGGER cancelled_notify AFTER INSERT ON invoice_sync.cancelled
    REFERENCING NEW TABLE AS finished
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.result_notify('cancelled');

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
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('invoice_sync_account', '');
    RETURN NULL;
END $$;

CREATE TRIGGER account_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON invoice_sync.account
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.account_notify();

-- The table's change counter (016): every changing statement bumps it in its own transaction,
-- even with triggers off for replication (ALWAYS), so a replica's poll reads one row, not the
-- table, to learn whether anything changed.
CREATE TABLE invoice_sync.account_generation (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL
);

CREATE FUNCTION invoice_sync.account_generation_bump() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE invoice_sync.account_generation SET generation = generation + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER account_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON invoice_sync.account
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.account_generation_bump();
ALTER TABLE invoice_sync.account ENABLE ALWAYS TRIGGER account_generation;


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
        GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.attempt TO invoice_sync_worker;
        GRANT SELECT, INSERT ON invoice_sync.audit TO invoice_sync_worker;
    END IF;
END $$;

-- The same for what 010 added: producers' enqueue() and the skip trigger read cancelled with
-- their own rights (roles.sql grants the same).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_producer') THEN
        GRANT SELECT (outbox_id, account, idempotency_key, reason, attempts, created_at,
                      cancelled_at, cancelled_by)
            ON invoice_sync.cancelled TO invoice_sync_producer;
        GRANT EXECUTE ON FUNCTION invoice_sync.result(text, text),
                                  invoice_sync.cancel(text, text, text)
            TO invoice_sync_producer;
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT ON invoice_sync.cancelled TO invoice_sync_worker;
        GRANT USAGE, SELECT ON SEQUENCE invoice_sync.result_notify_skipped
            TO invoice_sync_worker;
        GRANT EXECUTE ON FUNCTION invoice_sync.result(text, text),
                                  invoice_sync.cancel(text, text, text)
            TO invoice_sync_worker;
    END IF;
END $$;

-- enqueue() was replaced by 011 (a fifth parameter), which gave the groups that exist back their
-- right to call it (roles.sql grants the same), and the producer the new column.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT EXECUTE ON FUNCTION invoice_sync.enqueue(text, text, jsonb, timestamptz, text)
            TO invoice_sync_worker;
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_producer') THEN
        GRANT EXECUTE ON FUNCTION invoice_sync.enqueue(text, text, jsonb, timestamptz, text)
            TO invoice_sync_producer;
        GRANT INSERT (traceparent) ON invoice_sync.outbox TO invoice_sync_producer;
    END IF;
END $$;

-- The same for the account table of 012 (roles.sql grants the same).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.account TO invoice_sync_worker;
    END IF;
END $$;

-- The same for the account table's change counter of 016 (roles.sql grants the same).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, UPDATE ON invoice_sync.account_generation TO invoice_sync_worker;
    END IF;
END $$;

-- 017: the outbox trigger reads dead_letter.outcome_unknown with the producer's rights.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_producer') THEN
        GRANT SELECT (outcome_unknown) ON invoice_sync.dead_letter TO invoice_sync_producer;
    END IF;
END $$;
