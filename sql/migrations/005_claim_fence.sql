-- Outcomes are fenced by the claim they belong to. The attempt count cannot fence them: a row
-- given back without spending its attempt (rate limited, released unsent) counts back down, so
-- two claims can carry the same attempt number, and a late outcome of the first (a worker whose
-- lease ran out) would be applied to the second. `claims` only ever goes up, one per claim.
ALTER TABLE invoice_sync.outbox ADD COLUMN claims bigint NOT NULL DEFAULT 0;
