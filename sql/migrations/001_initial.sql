-- invoice-sync initial schema: the outbox producers write to, the tables finished rows move to,
-- account state shared by every replica, and the enqueue() function.

CREATE SCHEMA IF NOT EXISTS invoice_sync;

CREATE TABLE invoice_sync.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account          text        NOT NULL CHECK (length(account) BETWEEN 1 AND 200),
    idempotency_key  text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    payload          jsonb       NOT NULL,
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
    CONSTRAINT outbox_account_key UNIQUE (account, idempotency_key)
);

-- The claim reads due pending rows per account in (available_at, id) order; the index holds
-- only pending rows so it stays small however many rows are in flight.
CREATE INDEX outbox_claim_idx ON invoice_sync.outbox (account, available_at, id)
    WHERE state = 'pending';
-- The lease rescue looks only at running rows.
CREATE INDEX outbox_lease_idx ON invoice_sync.outbox (lease_expires_at) WHERE state = 'running';

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
    recovered           boolean     NOT NULL DEFAULT false,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    response            jsonb,
    CONSTRAINT synced_account_key UNIQUE (account, idempotency_key)
);

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
    replayed_at      timestamptz,
    replayed_to      bigint
);
CREATE INDEX dead_letter_reason_idx ON invoice_sync.dead_letter (reason, dead_at);
CREATE INDEX dead_letter_account_idx ON invoice_sync.dead_letter (account, dead_at);

-- Deployment-wide account state: a pause written by one replica stops claims in all of them.
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
