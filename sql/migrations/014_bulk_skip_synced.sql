-- `invoice-sync enqueue` leaves out already-synced and cancelled keys with one anti-join in its
-- INSERT (enqueue_from_staging), so the per-row check of outbox_skip_synced repeats that work
-- for every row of a bulk load (about a quarter of the INSERT's cost). The loader says so with
-- `SET LOCAL invoice_sync.bulk = on` in its transaction, and the trigger then lets the row by.
--
-- Any role can set a custom setting, a producer too, so the setting is honoured only when
-- neither the session's login nor the current role is a member of invoice_sync_producer
-- (session_user as well: a producer calling a SECURITY DEFINER function runs as its owner), or
-- when the current role is a superuser, who could disable the trigger anyway. A producer's
-- INSERT is checked row by row whatever it sets. The setting is asked first: a plain INSERT pays
-- one lookup more than before, and no membership test.
CREATE OR REPLACE FUNCTION invoice_sync.outbox_skip_synced() RETURNS trigger
LANGUAGE plpgsql AS $$
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
                  WHERE c.account = NEW.account AND c.idempotency_key = NEW.idempotency_key) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;
