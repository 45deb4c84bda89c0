-- invoice-sync least-privilege roles. Run as a superuser or the owner of the invoice_sync schema,
-- in the application's database, after `invoice-sync migrate`:
--
--     psql "$OWNER_URL" -v ON_ERROR_STOP=1 -f sql/roles.sql
--
-- Rerunnable: roles are created when missing and every grant is first revoked, so a rerun after
-- an upgrade leaves exactly the privileges below. Rerun it after each upgrade that adds a table.
--
-- Two NOLOGIN group roles; give each login role membership in one of them:
--     CREATE ROLE invoice_sync_app LOGIN PASSWORD '...' IN ROLE invoice_sync_worker;
--     CREATE ROLE shop_web LOGIN PASSWORD '...' IN ROLE invoice_sync_producer;
--
-- invoice_sync_worker   the daemon (`run`) and the operator commands (`enqueue`, `status`, `dlq`,
--                       `accounts`): reads and writes rows in the schema's tables; cannot create,
--                       alter or drop anything, and reads schema_migrations only to check the
--                       schema version. Migrations run as the schema owner, never as this role.
-- invoice_sync_producer the application writing orders: inserts the five producer columns of the
--                       outbox (or calls invoice_sync.enqueue()), sees only the id and key columns
--                       of outbox rows, and reads results from synced and dead_letter but not the
--                       payloads nor the provider's responses. It cannot update or delete
--                       anything, nor write the worker's columns. An available_at in the past
--                       becomes now(). Row-level security (migration 007) limits each producer
--                       login to the accounts granted to it, for writing and for reading:
--
--     INSERT INTO invoice_sync.producer_account (login, account) VALUES ('shop_web', 'shop-billclap');
--     DELETE FROM invoice_sync.producer_account WHERE login = 'shop_web' AND account = 'shop-billclap';
--
--                       (as the schema owner; a login with no row writes nothing; delete a login's
--                       rows when you drop it). A member of both groups is held as a producer.
--
-- No function in the schema is executable by PUBLIC; each group is granted the ones it calls.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        CREATE ROLE invoice_sync_worker NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'invoice_sync_producer') THEN
        CREATE ROLE invoice_sync_producer NOLOGIN;
    END IF;
END $$;

-- Start from nothing on every rerun (column grants go with REVOKE ALL on the table).
REVOKE ALL ON ALL TABLES IN SCHEMA invoice_sync FROM invoice_sync_worker, invoice_sync_producer;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA invoice_sync FROM invoice_sync_worker, invoice_sync_producer;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA invoice_sync FROM invoice_sync_worker, invoice_sync_producer;
REVOKE ALL ON SCHEMA invoice_sync FROM invoice_sync_worker, invoice_sync_producer;
-- Migration 007 did this for the functions it found; again here for any added since.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA invoice_sync FROM PUBLIC;

-- CONNECT and TEMPORARY are PUBLIC's by default; granted here so a database that revoked them
-- from PUBLIC still works. `invoice-sync enqueue` stages a bulk load in a temporary table.
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO invoice_sync_worker',
                   current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO invoice_sync_producer', current_database());
END $$;

GRANT USAGE ON SCHEMA invoice_sync TO invoice_sync_worker, invoice_sync_producer;

-- The worker: claim, lease, record outcomes, rescue leases, pause accounts, replay and purge
-- dead letters. LISTEN/NOTIFY and pg_advisory_lock need no grant.
GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.outbox TO invoice_sync_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.dead_letter TO invoice_sync_worker;
GRANT SELECT, INSERT, UPDATE ON invoice_sync.account_state TO invoice_sync_worker;
-- The deployment-wide rate limit: each claim refills and takes from its account's bucket.
GRANT SELECT, INSERT, UPDATE ON invoice_sync.rate_bucket TO invoice_sync_worker;
-- Each replica announces the accounts it is configured for (the KEDA query reads them too).
GRANT SELECT, INSERT, UPDATE ON invoice_sync.replica_account TO invoice_sync_worker;
GRANT EXECUTE ON FUNCTION invoice_sync.rate_bucket_level(double precision, timestamptz,
                                                        double precision, double precision)
    TO invoice_sync_worker;
-- Synced rows are the record of invoices that exist at a provider: the worker adds, never edits.
GRANT SELECT, INSERT ON invoice_sync.synced TO invoice_sync_worker;
GRANT SELECT ON invoice_sync.schema_migrations TO invoice_sync_worker;
GRANT EXECUTE ON FUNCTION invoice_sync.enqueue(text, text, jsonb, timestamptz, text)
    TO invoice_sync_worker;
-- Read-only: grants are the schema owner's to change.
GRANT SELECT ON invoice_sync.producer_account TO invoice_sync_worker;
-- The attempt history: written with each outcome (a late outcome replaces a rescue's row),
-- pruned after attempt_retention.
GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.attempt TO invoice_sync_worker;
-- The audit log is append-only: operators' actions are added, never edited or removed.
GRANT SELECT, INSERT ON invoice_sync.audit TO invoice_sync_worker;
-- Results and cancellation (the CLI's `cancel`), and the count of result notifications skipped
-- while the notification queue was over half full (`status` reads it; the flush's trigger adds).
GRANT SELECT ON invoice_sync.cancelled TO invoice_sync_worker;
GRANT USAGE, SELECT ON SEQUENCE invoice_sync.result_notify_skipped TO invoice_sync_worker;
GRANT EXECUTE ON FUNCTION invoice_sync.result(text, text), invoice_sync.cancel(text, text, text)
    TO invoice_sync_worker;
-- Accounts held in the database: replicas read them (secrets only as ciphertext), the CLI,
-- which runs as the worker, writes them. The producer gets nothing: it cannot see the table.
GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.account TO invoice_sync_worker;
-- The table's change counter (016): a replica polls it; writing the table bumps it.
GRANT SELECT, UPDATE ON invoice_sync.account_generation TO invoice_sync_worker;

-- The producer. enqueue() and the outbox triggers run with the caller's rights, so the column
-- grants below are what they need: INSERT of the producer's columns, SELECT of the columns the
-- conflict check and RETURNING read, and SELECT on synced for the already-synced check.
-- Results are readable without what a payload or a provider's answer may hold (customer data,
-- echoed credentials): dead_letter.payload and both tables' response are left out.
GRANT INSERT (account, idempotency_key, payload, available_at, traceparent)
    ON invoice_sync.outbox TO invoice_sync_producer;
GRANT SELECT (id, account, idempotency_key, available_at, created_at) ON invoice_sync.outbox
    TO invoice_sync_producer;
GRANT SELECT (outbox_id, account, idempotency_key, provider, provider_invoice_id, invoice_number,
              link, pdf_url, attempts, recovered, synced_at)
    ON invoice_sync.synced TO invoice_sync_producer;
GRANT SELECT (outbox_id, account, idempotency_key, reason, error, http_status, attempts,
              first_attempt_at, dead_at, replayed_at, replayed_to, outcome_unknown)
    ON invoice_sync.dead_letter TO invoice_sync_producer;
-- A producer sees its own grants (a policy hides the other logins').
GRANT SELECT (login, account) ON invoice_sync.producer_account TO invoice_sync_producer;
GRANT EXECUTE ON FUNCTION invoice_sync.enqueue(text, text, jsonb, timestamptz, text)
    TO invoice_sync_producer;
-- A cancelled key is skipped like a synced one: enqueue() and the outbox trigger read cancelled
-- with the producer's rights (its payload is left out, like dead_letter's).
GRANT SELECT (outbox_id, account, idempotency_key, reason, attempts, created_at, cancelled_at,
              cancelled_by)
    ON invoice_sync.cancelled TO invoice_sync_producer;
-- result() and cancel() run as the schema owner and check the caller's granted accounts
-- themselves (another account answers `unknown`).
GRANT EXECUTE ON FUNCTION invoice_sync.result(text, text), invoice_sync.cancel(text, text, text)
    TO invoice_sync_producer;
