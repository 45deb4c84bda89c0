-- Accounts held in the database, beside the [accounts.NAME] tables of the config file: a
-- platform adds and removes merchants' accounts every day without editing a file or
-- restarting a replica (`invoice-sync accounts add|update|remove`).
--
-- `options` holds the non-secret settings (base_url, provider extras); the provider's options
-- model checks them before the CLI writes them, but a row written by hand may still be wrong: the
-- worker then skips that account and says so (account.invalid). `secret` is the AES-GCM
-- ciphertext of the account's secrets (a JSON object: token, or Refrens' app_secret), 12 bytes of
-- nonce first, the account's name as associated data; `secret_key_id` names the key it was
-- encrypted under (a short hash of the key, never the key), so `accounts rotate-key` finds the
-- rows still under an old key and replicas holding both keys read either.
-- The name rule is the config's (one line, 1 to 100 characters, no control character).
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

-- One NOTIFY per changing statement (not per row): every replica reloads the accounts within
-- moments instead of waiting for its next poll. The payload is empty: a replica reads the table,
-- which it must do anyway, and a payload could not carry a secret by mistake.
CREATE FUNCTION invoice_sync.account_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('invoice_sync_account', '');
    RETURN NULL;
END $$;

CREATE TRIGGER account_notify AFTER INSERT OR UPDATE OR DELETE ON invoice_sync.account
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_sync.account_notify();
-- Trigger functions need no EXECUTE to fire; no function here is PUBLIC's (001).
REVOKE EXECUTE ON FUNCTION invoice_sync.account_notify() FROM PUBLIC;

-- The worker role reads the ciphertexts and, run by the CLI, writes them; producers see nothing.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'invoice_sync_worker') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_sync.account TO invoice_sync_worker;
    END IF;
END $$;
