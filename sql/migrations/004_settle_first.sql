-- The claim takes due rows whose last attempt's outcome is unknown before the other due rows:
-- whatever that attempt may have created is settled (looked up, found by its tag) while it is
-- recent. Behind a backlog, a retried row would otherwise wait for every older row, and a
-- provider without lookups (Billit's tag scan) would have to page back past everything
-- created meanwhile. This index holds only those rows, so finding them costs nothing.
CREATE INDEX outbox_settle_idx ON invoice_sync.outbox (account, available_at, id)
    WHERE state = 'pending' AND outcome_unknown;
