-- The operator console's reads (queries.sql `console_*`), each index-backed so a page answers in
-- milliseconds with a million rows. None on the outbox: every index there is paid by each
-- producer's insert and each claim; the console finds outbox rows through the unique
-- (account, idempotency_key) index and the claim's own indexes.
--
-- Invoice search by invoice number or provider id, on synced rows.
CREATE INDEX synced_invoice_number_idx ON invoice_sync.synced (invoice_number);
CREATE INDEX synced_provider_invoice_id_idx ON invoice_sync.synced (provider_invoice_id);
-- A key's dead letters (the invoice page, the invoice list in key order, search by key).
CREATE INDEX dead_letter_key_idx ON invoice_sync.dead_letter (account, idempotency_key);
-- Search by invoice number among dead letters not replayed (the number is in the payload).
CREATE INDEX dead_letter_number_idx ON invoice_sync.dead_letter ((payload->>'number'))
    WHERE replayed_at IS NULL;
-- Dead letters not replayed by account and reason (the overview, `status`): an index-only count.
CREATE INDEX dead_letter_open_reason_idx ON invoice_sync.dead_letter (account, reason)
    WHERE replayed_at IS NULL;
