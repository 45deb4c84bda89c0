-- Payloads are bounded: one 100 MB document written by a producer took a draining worker from
-- 62 to 577 MB, and a row is read again at every claim. The bound is on the payload's JSON text
-- as PostgreSQL writes it, octet_length(payload::text) <= 262144 (256 KiB, worker.invoice
-- MAX_PAYLOAD_BYTES): a thousand-line invoice takes a fraction of it. invoice_sync.enqueue()
-- and every INSERT are refused above it, naming this constraint.
--
-- A row already above it would fail the check at its next UPDATE (a claim, a retry), so such
-- rows leave the outbox first, as dead letters `invalid_payload` with their payload kept, for a
-- human to shorten and replay. The constraint is added NOT VALID, the rows are moved, and it is
-- validated, all in this migration's transaction: the ACCESS EXCLUSIVE lock the ADD takes keeps
-- producers from writing an oversize row in between. (A table owner who drops the constraint
-- later is covered by the claim, which dead-letters such a row without reading its payload.)
ALTER TABLE invoice_sync.outbox
    ADD CONSTRAINT outbox_payload_at_most_256_kib
    CHECK (octet_length(payload::text) <= 262144) NOT VALID;

WITH oversize AS (
    DELETE FROM invoice_sync.outbox
     WHERE octet_length(payload::text) > 262144
    RETURNING id, account, idempotency_key, payload, attempts, first_attempt_at,
              octet_length(payload::text) AS bytes
)
INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload, reason, error,
                                      attempts, first_attempt_at)
SELECT id, account, idempotency_key, payload, 'invalid_payload',
       format('payload: %s bytes of JSON, over the limit of 262144 (256 KiB); moved out of the '
              'outbox by migration 006%s', bytes,
              CASE WHEN attempts > 0
                   THEN ' (earlier attempts may have reached the provider: check it first)'
                   ELSE ', never sent' END),
       attempts, first_attempt_at
  FROM oversize;

ALTER TABLE invoice_sync.outbox VALIDATE CONSTRAINT outbox_payload_at_most_256_kib;
