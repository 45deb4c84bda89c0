-- The record ops read months later: one row per provider attempt (attempt), and one row per
-- operator action (audit).
--
-- attempt is written by the flush that records the outcome (the same statement, no extra round
-- trip) and pruned after [worker] attempt_retention by a chore, in bounded batches; synced and
-- dead_letter are never pruned with it. Its primary key is the claim: one attempt per claim of
-- an outbox row (claims only go up, migration 005), so writing a batch twice records it once.
-- `calls` holds the provider requests the attempt made besides the create (logins, lookups, tag
-- scans): a small JSON array, never a body. `response` is bounded and scrubbed by the provider
-- seam before it gets here, as synced.response and dead_letter.response are.
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
-- `show ACCOUNT KEY` and the console's invoice page: one key's attempts, across replays (a
-- replayed row has a new outbox id, the same key).
CREATE INDEX attempt_key_idx ON invoice_sync.attempt (account, idempotency_key, started_at);
-- Pruning and "attempts in the last hour" read by time; attempts arrive in time order, so a
-- BRIN index is a few pages and costs the flush nothing measurable.
CREATE INDEX attempt_started_brin ON invoice_sync.attempt USING brin (started_at);

-- `show ACCOUNT KEY` finds a key's dead letters (one per replay that died again) without
-- reading every dead letter of the account.
CREATE INDEX dead_letter_key_idx ON invoice_sync.dead_letter (account, idempotency_key);

-- Append-only: the worker role may insert and read, never update or delete (sql/roles.sql).
-- `actor` is the console login, or `os-user@host` for the CLI; `target` the ids or the filter
-- the action was given (JSON); `rows` how many rows it touched.
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

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.attempt TO invoice_sync_worker;
        GRANT SELECT, INSERT ON invoice_sync.audit TO invoice_sync_worker;
    END IF;
END $$;
