-- A replica's account poll (and every account notification) compared a fingerprint of the
-- whole account table: its row count and the sum of every row's hash. That read and hashed
-- every row, ciphertexts included, on every replica at every poll: with 100,000 accounts,
-- 0.4 s of the server's CPU each time on the 2-core bench machine, growing with the table.
-- Now every statement that changes the table bumps one counter, in the change's own
-- transaction (so a replica that sees the new count sees the change), and the poll reads that
-- one row; the table is counted only when the counter moved. Changes by hand count too: the
-- trigger fires for them as for the CLI's. A second writer of the table waits for the first
-- to commit (the counter's row lock): accounts are written rarely, by operators.
CREATE TABLE invoice_sync.account_generation (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL
);
INSERT INTO invoice_sync.account_generation (generation) VALUES (0);

CREATE FUNCTION invoice_sync.account_generation_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE invoice_sync.account_generation SET generation = generation + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER account_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON invoice_sync.account
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.account_generation_bump();
-- The counter must never miss a change, even one applied with triggers off for replication
-- (session_replication_role = replica: a logical replication subscriber's apply): ALWAYS.
ALTER TABLE invoice_sync.account ENABLE ALWAYS TRIGGER account_generation;
-- A TRUNCATE (by hand: no role of ours may) is a change the replicas should hear of too.
CREATE OR REPLACE TRIGGER account_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON invoice_sync.account
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.account_notify();
-- Trigger functions need no EXECUTE to fire; no function here is PUBLIC's (001).
REVOKE EXECUTE ON FUNCTION invoice_sync.account_generation_bump() FROM PUBLIC;

-- The worker polls the counter and, run by the CLI, writes the table (so its trigger bumps it).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, UPDATE ON invoice_sync.account_generation TO invoice_sync_worker;
    END IF;
END $$;
