-- A token bucket per account, shared by every replica: the deployment-wide rate limit.
--
-- The claim statement (queries.sql `outbox_claim`) refills the bucket by the time since the
-- last refill, takes one token per row it leases, and leases no row it has no token for, so N
-- replicas together stay under the account's limit and no lease is burned waiting for a permit.
-- The rate and burst are the claiming replica's configuration, written on each claim.
CREATE TABLE invoice_sync.rate_bucket (
    account     text             PRIMARY KEY,
    tokens      double precision NOT NULL,
    rate        double precision NOT NULL CHECK (rate > 0),  -- tokens per second
    burst       double precision NOT NULL CHECK (burst >= 1),
    granted     integer          NOT NULL DEFAULT 0,         -- tokens the last claim took
    refilled_at timestamptz      NOT NULL
);

-- The bucket's level now: what it held plus what refilled since, capped at the burst.
-- clock_timestamp(), not now(): a claim that waited on the row lock must not count its own
-- transaction's start as "now" and lose the tokens that refilled while it waited.
CREATE FUNCTION invoice_sync.rate_bucket_level(
    tokens double precision, refilled_at timestamptz, rate double precision,
    burst double precision
) RETURNS double precision LANGUAGE sql VOLATILE AS $$
    SELECT least(burst, tokens + rate * greatest(0, extract(epoch FROM clock_timestamp() - refilled_at)))
$$;
