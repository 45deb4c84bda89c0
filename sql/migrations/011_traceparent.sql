-- A producer may hand its W3C trace context (a `traceparent`, www.w3.org/TR/trace-context) to
-- the worker with the row: each attempt's OpenTelemetry span then continues the producer's
-- trace. Optional, in the outbox and in enqueue(); kept by the dead letters, so a replayed row
-- still belongs to the trace that wrote it.
--
-- The format is checked in the database, for a plain INSERT and enqueue() alike: version 00,
-- lowercase hex, and neither id all zeros (the specification makes both invalid). A malformed
-- value is refused rather than dropped, so a producer's bug shows at once, in its own
-- transaction; the constraint's name says which column it is about.

ALTER TABLE invoice_sync.outbox
    ADD COLUMN traceparent text
    CONSTRAINT outbox_traceparent_is_w3c CHECK (
        traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
        AND substr(traceparent, 4, 32) <> '00000000000000000000000000000000'
        AND substr(traceparent, 37, 16) <> '0000000000000000');

-- Not checked here: only the outbox's check lets a value in, and the worker copies it over.
ALTER TABLE invoice_sync.dead_letter ADD COLUMN traceparent text;

-- enqueue() gains p_traceparent. A fifth parameter makes a new function, and a four-parameter
-- one beside it would make every three- or four-argument call ambiguous, so the old one goes:
-- calls with three or four arguments reach the new one unchanged (the new parameter defaults to
-- NULL). Same transaction, so no producer ever finds no enqueue().
DROP FUNCTION invoice_sync.enqueue(text, text, jsonb, timestamptz);

-- Producers' entry point: idempotent, returns the row id (the existing one for a repeated key,
-- including a key already synced or cancelled). A malformed p_traceparent is refused with an
-- error naming it, before anything is written.
CREATE FUNCTION invoice_sync.enqueue(
    p_account text,
    p_idempotency_key text,
    p_payload jsonb,
    p_available_at timestamptz DEFAULT NULL,
    p_traceparent text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
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
    RETURN v_id;
END $$;

-- The dropped function took its grants with it. Functions are executable by PUBLIC unless
-- revoked (migration 007); and producers and replicas that work today must keep calling
-- enqueue() before sql/roles.sql is rerun (it grants the same), so the groups get it back now.
-- The producer group may also write the new column with a plain INSERT.
REVOKE EXECUTE ON FUNCTION invoice_sync.enqueue(text, text, jsonb, timestamptz, text) FROM PUBLIC;
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
