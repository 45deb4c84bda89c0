-- The producer's side of the loop: a row's outcome as one function call (result), taking back a
-- row that was not sent yet (cancel, and the table where cancelled rows are kept), and a NOTIFY
-- when a row reaches a final state, so producers need not poll three tables.
--
-- result() and cancel() are SECURITY DEFINER: a producer may not read the worker's columns
-- (state, attempts, errors) nor delete outbox rows, yet it needs the state and a race-safe
-- delete. Each checks its caller the way the row-level security policies of 007 do, but by
-- session_user (the login that connected), which SET ROLE cannot change: a restricted producer
-- sees only the accounts granted to it in producer_account; for any other account both answer
-- `unknown`, whether or not the key exists. A function's plan is not shown by EXPLAIN ANALYZE of
-- its call, so reading through result() gives away nothing about other accounts' rows.

-- ---------------------------------------------------------------------------------------------
-- cancelled: rows a producer or an operator withdrew before they were sent. Kept with their
-- payload and reason; the key cannot be enqueued again (the skip trigger below).
-- ---------------------------------------------------------------------------------------------
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

ALTER TABLE invoice_sync.cancelled ENABLE ROW LEVEL SECURITY;
CREATE POLICY producer_accounts ON invoice_sync.cancelled
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_roles me, pg_catalog.pg_roles g
                        WHERE me.rolname = current_user AND NOT me.rolsuper
                          AND g.rolname = 'invoice_sync_producer'
                          AND pg_catalog.pg_has_role(me.oid, g.oid, 'MEMBER'))
           OR account IN (SELECT p.account FROM invoice_sync.producer_account p
                           WHERE p.login = current_user));

-- A key that is already synced or cancelled is never sent again, whoever inserts it and however.
CREATE OR REPLACE FUNCTION invoice_sync.outbox_skip_synced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM invoice_sync.synced s
               WHERE s.account = NEW.account AND s.idempotency_key = NEW.idempotency_key)
       OR EXISTS (SELECT 1 FROM invoice_sync.cancelled c
                  WHERE c.account = NEW.account AND c.idempotency_key = NEW.idempotency_key) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;

-- As before, and a cancelled key answers with its row's id too.
CREATE OR REPLACE FUNCTION invoice_sync.enqueue(
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
    IF v_id IS NULL THEN
        SELECT outbox_id INTO v_id FROM invoice_sync.cancelled
         WHERE account = p_account AND idempotency_key = p_idempotency_key;
    END IF;
    RETURN v_id;
END $$;

-- ---------------------------------------------------------------------------------------------
-- result() and cancel()
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
LANGUAGE plpgsql AS $$
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

-- Functions are executable by PUBLIC unless revoked (see 007); sql/roles.sql grants them.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA invoice_sync FROM PUBLIC;

-- Producers' enqueue() and the skip trigger read cancelled with the caller's rights: where the
-- groups exist, they get what they need now, so the upgrade does not fail producers' order
-- transactions before sql/roles.sql is rerun (it grants the same).
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
