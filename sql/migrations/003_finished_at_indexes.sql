-- `status --watch` counts rows finished since it began, on every refresh, while synced keeps
-- all history: these let it read only the recent range (INCLUDE makes them index-only scans).
-- The dead_at index also serves `dlq list` (newest first) and `dlq purge --older-than`.
CREATE INDEX synced_synced_at_idx ON invoice_sync.synced (synced_at) INCLUDE (account);
CREATE INDEX dead_letter_dead_at_idx ON invoice_sync.dead_letter (dead_at)
    INCLUDE (account, reason);
