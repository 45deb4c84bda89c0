-- Two holes a producer could go through, found by an attacker's review.
--
-- 1. A key dead-lettered after an attempt that may have reached the provider (a timeout after
-- sending, then `ambiguous`, or retries exhausted on timeouts) could be enqueued again, as a new
-- row with nothing to say so: it was sent as a first attempt, and the invoice the earlier
-- attempt may have created got a twin. A dead letter now records `outcome_unknown` (the flush
-- writes what the worker knew), and while such a dead letter is open (not replayed) its key is
-- skipped like a synced or cancelled one: an operator decides, with `dlq replay` (which is not
-- skipped: its rows carry replayed_from) or `dlq purge`. The dead letters already there are
-- unknown when their reason says so (`ambiguous`), when an attempt in the history left the
-- outcome unknown, or when they ran out of retries (`exhausted`) and the history of those
-- retries has been pruned. A row a producer queued again before this migration, beside such a
-- dead letter, is taken for that dead letter's replay, on the safe path (outcome unknown):
-- otherwise its claim would delete it, its payload with it.
--
-- 2. The outbox's BEFORE INSERT triggers and enqueue() ran with the caller's search_path: a
-- producer owning a schema could put an operator `=` or a clock_timestamp() of its own ahead of
-- pg_catalog and have a synced key inserted again, or its rows dated in the past. They now run
-- with search_path = pg_catalog, pg_temp (as result() and cancel() did), as do the other
-- trigger functions a producer's or an operator's statement fires.
ALTER TABLE invoice_sync.dead_letter ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false;
UPDATE invoice_sync.dead_letter d SET outcome_unknown = true
 WHERE d.reason = 'ambiguous'
    OR EXISTS (SELECT FROM invoice_sync.attempt a
                WHERE a.outbox_id = d.outbox_id AND a.outcome_unknown)
    OR (d.reason = 'exhausted'
        AND NOT EXISTS (SELECT FROM invoice_sync.attempt a
                         WHERE a.outbox_id = d.outbox_id AND a.outcome <> 'dead_letter'));
WITH held AS (
    SELECT DISTINCT ON (account, idempotency_key) outbox_id, account, idempotency_key
      FROM invoice_sync.dead_letter
     WHERE replayed_at IS NULL AND outcome_unknown
     ORDER BY account, idempotency_key, dead_at DESC
),
adopted AS (
    UPDATE invoice_sync.outbox o SET replayed_from = h.outbox_id, outcome_unknown = true
      FROM held h
     WHERE o.account = h.account AND o.idempotency_key = h.idempotency_key
       AND o.replayed_from IS NULL
    RETURNING o.id, o.replayed_from
)
UPDATE invoice_sync.dead_letter d SET replayed_at = now(), replayed_to = a.id
  FROM adopted a
 WHERE d.outbox_id = a.replayed_from;
-- What the insert trigger, the bulk load and every claimed row look up: small (open, unknown).
CREATE INDEX dead_letter_open_unknown_idx ON invoice_sync.dead_letter (account, idempotency_key)
    WHERE replayed_at IS NULL AND outcome_unknown;

CREATE OR REPLACE FUNCTION invoice_sync.outbox_skip_synced() RETURNS trigger
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

ALTER FUNCTION invoice_sync.outbox_clamp_available_at() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION invoice_sync.outbox_notify() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION invoice_sync.result_notify() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION invoice_sync.account_notify() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION invoice_sync.account_generation_bump() SET search_path = pg_catalog, pg_temp;

-- The id it returns for a key it skips: also an open dead letter's whose outcome is unknown.
CREATE OR REPLACE FUNCTION invoice_sync.enqueue(
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

-- The producer reads the new column in the trigger's check, with its own rights.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_producer') THEN
        GRANT SELECT (outcome_unknown) ON invoice_sync.dead_letter TO invoice_sync_producer;
    END IF;
END $$;
