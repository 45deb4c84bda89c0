-- Every runtime query of invoice-sync, one `-- name:` block each, loaded once by
-- worker/store/queries.py.
-- The Python method that runs a query carries the query's name.

-- name: outbox_claim
-- Lease due rows for worker $1: up to $3 per account of $2, and no more than the account's
-- shared token bucket allows, recording the attempt before any HTTP call. $4 lease seconds,
-- $5 probe cool-down seconds, $6 bucket rates (tokens/s), $7 bucket bursts. Returns the leased
-- rows, plus one row with a null id per account that ran out of tokens, saying when the next
-- one comes (`token_wait` seconds). $8 is the payload limit (bytes of JSON text): a due row
-- above it (written before migration 006, or past a dropped or NOT VALID constraint) is moved
-- to the dead letters here, without an UPDATE the constraint could refuse and without its
-- payload ever reaching a worker; it comes back with `dead_error` set and no payload. A due row
-- whose key is already synced or cancelled, or dead-lettered with an unknown outcome and not
-- replayed (017), is deleted, not leased: the BEFORE INSERT trigger keeps such keys out, but an
-- insert racing the flush that moved the key (or the cancel) reads those tables before that
-- commits and then waits for the old row's unique-index entry; this claim, later than both
-- commits, sees the key's row there. It comes back with `finished_as` ('synced', 'cancelled'
-- or 'dead_letter') and no payload. Each row carries the producer's
-- `traceparent` (migration 011) for the attempt's span.
WITH requested AS (
    SELECT r.account, r.n, r.rate, r.burst, s.paused, s.throttled_until
      FROM unnest($2::text[], $3::int[], $6::float8[], $7::float8[]) AS r(account, n, rate, burst)
      LEFT JOIN invoice_sync.account_state s ON s.account = r.account
),
-- A paused account gets one probe row per cool-down, deployment-wide: the UPDATE takes the row
-- lock, so of two replicas racing here only the first sees probe_at <= now() and returns it.
probing AS (
    UPDATE invoice_sync.account_state s
       SET probe_at = now() + make_interval(secs => $5), updated_at = now()
      FROM requested r
     WHERE s.account = r.account AND s.paused AND s.probe_at <= now()
       AND (s.throttled_until IS NULL OR s.throttled_until <= now())
    RETURNING s.account
),
wanted AS (
    SELECT account, n FROM requested
     WHERE NOT coalesce(paused, false)
       AND (throttled_until IS NULL OR throttled_until <= now())
    UNION ALL
    SELECT account, 1 FROM probing
),
-- The CTE picks and locks the rows; SKIP LOCKED lets concurrent workers take disjoint rows
-- instead of queueing behind each other. Rows picked beyond the bucket's tokens stay pending
-- (their lock ends with this statement).
-- Rows whose last outcome is unknown come first (see migration 004): the first branch reads
-- only them, and the second is read only for what the first leaves of the n.
candidates AS (
    SELECT c.id, c.outcome_unknown AS prior_unknown, w.account,
           row_number() OVER (PARTITION BY w.account
                              ORDER BY c.outcome_unknown DESC, c.available_at, c.id) AS rank
      FROM wanted w
     CROSS JOIN LATERAL (
        SELECT * FROM (
            SELECT o.id, o.outcome_unknown, o.available_at
              FROM invoice_sync.outbox o
             WHERE o.account = w.account AND o.state = 'pending' AND o.outcome_unknown
               AND o.available_at <= now()
             ORDER BY o.available_at, o.id
             LIMIT w.n
               FOR UPDATE SKIP LOCKED
        ) settle
        UNION ALL
        SELECT * FROM (
            SELECT o.id, o.outcome_unknown, o.available_at
              FROM invoice_sync.outbox o
             WHERE o.account = w.account AND o.state = 'pending' AND NOT o.outcome_unknown
               AND o.available_at <= now()
             ORDER BY o.available_at, o.id
             LIMIT w.n
               FOR UPDATE SKIP LOCKED
        ) fresh
        LIMIT w.n
     ) c
),
picked AS (
    SELECT c.account, count(*)::int AS n, r.rate, r.burst
      FROM candidates c JOIN requested r USING (account)
     GROUP BY c.account, r.rate, r.burst
),
-- One token per row. The upsert's row lock serialises replicas claiming for the same account:
-- each sees the tokens the previous one left. A new bucket starts full. In account order, so
-- two claims for the same accounts lock their buckets in the same order and cannot deadlock.
spent AS (
    INSERT INTO invoice_sync.rate_bucket AS b (account, tokens, rate, burst, granted, refilled_at)
    SELECT account, burst - least(n, floor(burst)), rate, burst, least(n, floor(burst)),
           clock_timestamp()
      FROM picked
     ORDER BY account
    ON CONFLICT (account) DO UPDATE SET
        granted = least(excluded.granted, floor(
            invoice_sync.rate_bucket_level(b.tokens, b.refilled_at, excluded.rate, excluded.burst))),
        tokens = invoice_sync.rate_bucket_level(b.tokens, b.refilled_at, excluded.rate, excluded.burst)
                 - least(excluded.granted, floor(
            invoice_sync.rate_bucket_level(b.tokens, b.refilled_at, excluded.rate, excluded.burst))),
        rate = excluded.rate, burst = excluded.burst, refilled_at = clock_timestamp()
    RETURNING b.account, b.granted, b.tokens, b.rate
),
due AS (
    SELECT c.id, c.prior_unknown
      FROM candidates c JOIN spent s USING (account)
     WHERE c.rank <= s.granted
),
-- The ids as an array, not a join: the planner cannot know how few rows `due` holds, and a
-- join made it scan the whole outbox (its cost grew with the backlog); `= ANY(ARRAY(...))`
-- looks each row up by primary key.
leased AS (
    UPDATE invoice_sync.outbox o
       SET state = 'running',
           attempts = o.attempts + 1,
           claims = o.claims + 1,
           outcome_unknown = true,
           lease_owner = $1,
           lease_expires_at = now() + make_interval(secs => $4),
           first_attempt_at = coalesce(o.first_attempt_at, now()),
           updated_at = now()
     WHERE o.id = ANY (ARRAY(SELECT id FROM due)) AND octet_length(o.payload::text) <= $8
       -- OFFSET 0 keeps each check a look-up of the leased row's key in the table's key index:
       -- without it the generic plan, made while the tables were small, joined or hashed the
       -- whole of synced (or of the open dead letters) at every claim, a cost growing with them
       -- (a 30,000-invoice drain ran a third slower by its end).
       AND NOT EXISTS (SELECT FROM invoice_sync.synced s
                        WHERE s.account = o.account AND s.idempotency_key = o.idempotency_key
                       OFFSET 0)
       AND NOT EXISTS (SELECT FROM invoice_sync.cancelled c
                        WHERE c.account = o.account AND c.idempotency_key = o.idempotency_key
                       OFFSET 0)
       AND (o.replayed_from IS NOT NULL
            OR NOT EXISTS (SELECT FROM invoice_sync.dead_letter d
                            WHERE d.account = o.account AND d.idempotency_key = o.idempotency_key
                              AND d.replayed_at IS NULL AND d.outcome_unknown
                           OFFSET 0))
    RETURNING o.id, o.account, o.idempotency_key, o.payload::text AS payload, o.attempts,
              o.claims, o.first_attempt_at, o.created_at, o.traceparent
),
-- Only the due rows `leased` left out: every due row is locked by this statement, so the size
-- and a finished key are the reasons to leave a row out, and the common claim (neither) reads no
-- row a second time (a second look-up and text conversion per row was a seventh of the claim).
-- A row over the limit whose key is finished too is dead-lettered (one DELETE per row).
oversize AS (
    DELETE FROM invoice_sync.outbox o
     WHERE o.id = ANY (ARRAY(SELECT id FROM due EXCEPT ALL SELECT id FROM leased))
       AND octet_length(o.payload::text) > $8
    RETURNING o.id, o.account, o.idempotency_key, o.payload, o.attempts, o.first_attempt_at,
              o.traceparent, octet_length(o.payload::text) AS bytes
),
finished AS (
    DELETE FROM invoice_sync.outbox o
     WHERE o.id = ANY (ARRAY(SELECT id FROM due EXCEPT ALL SELECT id FROM leased))
       AND octet_length(o.payload::text) <= $8
       AND (EXISTS (SELECT FROM invoice_sync.synced s
                     WHERE s.account = o.account AND s.idempotency_key = o.idempotency_key
                    OFFSET 0)
            OR EXISTS (SELECT FROM invoice_sync.cancelled c
                        WHERE c.account = o.account AND c.idempotency_key = o.idempotency_key
                       OFFSET 0)
            OR (o.replayed_from IS NULL
                AND EXISTS (SELECT FROM invoice_sync.dead_letter d
                             WHERE d.account = o.account
                               AND d.idempotency_key = o.idempotency_key
                               AND d.replayed_at IS NULL AND d.outcome_unknown
                            OFFSET 0)))
    RETURNING o.id, o.account, o.idempotency_key,
              CASE WHEN EXISTS (SELECT FROM invoice_sync.synced s
                                 WHERE s.account = o.account
                                   AND s.idempotency_key = o.idempotency_key
                                OFFSET 0) THEN 'synced'
                   WHEN EXISTS (SELECT FROM invoice_sync.cancelled c
                                 WHERE c.account = o.account
                                   AND c.idempotency_key = o.idempotency_key
                                OFFSET 0) THEN 'cancelled'
                   ELSE 'dead_letter' END AS finished_as
),
buried AS (
    INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload, reason,
                                          error, attempts, first_attempt_at, traceparent,
                                          outcome_unknown)
    SELECT x.id, x.account, x.idempotency_key, x.payload, 'invalid_payload',
           format('payload: %s bytes of JSON, over the limit of %s; not read by the worker%s',
                  x.bytes, $8,
                  CASE WHEN d.prior_unknown
                       THEN ', but an earlier attempt may have reached the provider: check it'
                       ELSE ', never sent' END),
           x.attempts, x.first_attempt_at, x.traceparent, d.prior_unknown
      FROM oversize x JOIN due d USING (id)
    RETURNING outbox_id, account, idempotency_key, error
)
SELECT l.id, l.account, l.idempotency_key, l.payload, l.attempts, l.claims, l.first_attempt_at,
       l.created_at, d.prior_unknown, l.account IN (SELECT account FROM probing) AS probe,
       NULL::float8 AS token_wait, NULL::text AS dead_error, l.traceparent,
       NULL::text AS finished_as
  FROM leased l JOIN due d USING (id)
UNION ALL
SELECT NULL, s.account, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (1 - s.tokens) / s.rate,
       NULL, NULL, NULL
  FROM spent s JOIN picked p USING (account)
 WHERE s.granted < p.n
UNION ALL
SELECT b.outbox_id, b.account, b.idempotency_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       b.error, NULL, NULL
  FROM buried b
UNION ALL
SELECT f.id, f.account, f.idempotency_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, f.finished_as
  FROM finished f;

-- name: outbox_ready
-- Accounts with due work, for the claim to ask rows of (the claim's first step). Walks the
-- accounts that have pending rows in name order, starting after $1 and wrapping round once,
-- reading one entry of the claim index per account (a loose index scan: each step jumps to the
-- next account's earliest pending row), so its cost follows the accounts with pending rows and
-- never the accounts configured; it stops after $2 accounts walked or $3 found ready. Ready:
-- the earliest pending row is due, and the account is neither paused (unless its probe is due)
-- nor throttled. Returns every account walked, in walk order, with `ready`; the caller keeps
-- its place (the last account it served) for the next walk, which is how accounts take turns.
-- outbox_claim is unchanged: it gets only the accounts this walk found.
-- With $4, each ready account also comes with its invoice_sync.account row, whole (secret as
-- ciphertext, `version` as account_rows_named gives it; all null: not in the table), so a
-- claim reading accounts it has not opened yet needs no round trip of its own for them.
WITH RECURSIVE walk(account, step, found, wrapped, ready) AS (
    SELECT s.account, 1, r.ready::int, s.wrapped, r.ready
      FROM (
        (SELECT o.account, o.available_at, false AS wrapped
           FROM invoice_sync.outbox o
          WHERE o.state = 'pending' AND o.account > $1
          ORDER BY o.account, o.available_at
          LIMIT 1)
        UNION ALL
        (SELECT o.account, o.available_at, true
           FROM invoice_sync.outbox o
          WHERE o.state = 'pending'
          ORDER BY o.account, o.available_at
          LIMIT 1)
        LIMIT 1
      ) s
     CROSS JOIN LATERAL (
        -- OFFSET 0 keeps this a subquery evaluated once per step, not inlined twice.
        SELECT s.available_at <= now() AND NOT EXISTS (
                   SELECT 1 FROM invoice_sync.account_state a
                    WHERE a.account = s.account
                      AND ((a.paused AND NOT coalesce(a.probe_at <= now(), false))
                           OR a.throttled_until > now())) AS ready
        OFFSET 0
     ) r
    UNION ALL
    SELECT s.account, w.step + 1, w.found + r.ready::int, s.wrapped, r.ready
      FROM walk w
     CROSS JOIN LATERAL (
        (SELECT o.account, o.available_at, w.wrapped AS wrapped
           FROM invoice_sync.outbox o
          WHERE o.state = 'pending' AND o.account > w.account
          ORDER BY o.account, o.available_at
          LIMIT 1)
        UNION ALL
        -- Past the last account: once round to the first.
        (SELECT o.account, o.available_at, true
           FROM invoice_sync.outbox o
          WHERE NOT w.wrapped AND o.state = 'pending'
          ORDER BY o.account, o.available_at
          LIMIT 1)
        LIMIT 1
     ) s
     CROSS JOIN LATERAL (
        SELECT s.available_at <= now() AND NOT EXISTS (
                   SELECT 1 FROM invoice_sync.account_state a
                    WHERE a.account = s.account
                      AND ((a.paused AND NOT coalesce(a.probe_at <= now(), false))
                           OR a.throttled_until > now())) AS ready
        OFFSET 0
     ) r
     WHERE w.step < $2 AND w.found < $3
       -- Round once: after wrapping, stop where the walk began.
       AND NOT (s.wrapped AND s.account > $1)
)
SELECT w.account, w.ready,
       a.name, a.provider, a.options::text AS options, a.rate_limit, a.concurrency, a.enabled,
       a.secret, a.secret_key_id, a.created_at, a.updated_at, a.updated_by,
       CASE WHEN a.name IS NOT NULL THEN hashtextextended(a::text, 0) END AS version
  FROM walk w
  LEFT JOIN invoice_sync.account a ON $4::boolean AND w.ready AND a.name = w.account
 ORDER BY w.step;

-- name: outbox_record
-- Apply a batch of outcomes ($2, a JSON array) in one statement: synced and dead rows move out
-- of the outbox, retries and releases go back to pending. Fenced by the claim number, which only
-- a new claim changes (migration 005): a worker whose row was re-claimed cannot overwrite that
-- claim's outcome. A row whose lease ran out and that nobody has claimed since (owner NULL)
-- still takes its outcome: one kept through a database outage, say.
-- Each applied outcome that carries an attempt `outcome` label also writes its row of the
-- attempt history (`recorded`), in this statement: no round trip of its own.
-- $2 as json, not jsonb: each record is read once, into its columns; as jsonb the whole batch
-- was first built as one binary document (500 rows: 2.2 ms of binding, now 0.5, in a flush of
-- some 13 ms on the server).
WITH result AS (
    SELECT *
      FROM json_to_recordset($2::json) AS r(
          id bigint, claim bigint, kind text, delay float8, spend boolean, unknown boolean,
          reason text, error text, http_status int, response jsonb, provider text,
          provider_invoice_id text, invoice_number text, link text, pdf_url text,
          recovered boolean, outcome text, started_at timestamptz, duration_ms int,
          create_status int, calls jsonb, attempt_reason text)
),
owned AS (
    SELECT o.id, o.account, o.idempotency_key, o.payload, o.attempts, o.first_attempt_at,
           o.traceparent,
           r.kind, r.delay, r.spend, r.unknown, r.reason, r.error, r.http_status, r.response,
           r.provider, r.provider_invoice_id, r.invoice_number, r.link, r.pdf_url, r.recovered,
           r.claim, r.outcome, r.started_at, r.duration_ms, r.create_status, r.calls,
           r.attempt_reason
      FROM invoice_sync.outbox o
      JOIN result r ON r.id = o.id
     WHERE o.claims = r.claim AND (o.lease_owner = $1 OR o.lease_owner IS NULL)
       FOR UPDATE OF o
),
to_synced AS (
    INSERT INTO invoice_sync.synced (outbox_id, account, idempotency_key, provider,
                                     provider_invoice_id, invoice_number, link, pdf_url,
                                     attempts, recovered, response)
    SELECT id, account, idempotency_key, provider, provider_invoice_id, invoice_number, link,
           pdf_url, attempts, coalesce(recovered, false), response
      FROM owned WHERE kind = 'synced'
    -- A key can only be here twice if a producer re-inserted it before the first row moved;
    -- the first invoice stands, the row still leaves the outbox.
    ON CONFLICT (account, idempotency_key) DO NOTHING
    RETURNING outbox_id
),
to_dead AS (
    INSERT INTO invoice_sync.dead_letter (outbox_id, account, idempotency_key, payload, reason,
                                          error, http_status, response, attempts,
                                          first_attempt_at, traceparent, outcome_unknown)
    SELECT id, account, idempotency_key, payload, reason, error, http_status, response,
           attempts, first_attempt_at, traceparent, coalesce(unknown, false)
      FROM owned WHERE kind = 'dead'
    RETURNING outbox_id
),
removed AS (
    DELETE FROM invoice_sync.outbox o
     USING owned
     WHERE o.id = owned.id AND owned.kind IN ('synced', 'dead')
    RETURNING o.id
),
rescheduled AS (
    UPDATE invoice_sync.outbox o
       SET state = 'pending',
           attempts = o.attempts - CASE WHEN owned.spend THEN 0 ELSE 1 END,
           outcome_unknown = owned.unknown,
           available_at = now() + make_interval(secs => owned.delay),
           lease_owner = NULL,
           lease_expires_at = NULL,
           last_error = coalesce(owned.error, o.last_error),
           updated_at = now()
      FROM owned
     WHERE o.id = owned.id AND owned.kind = 'retry'
    RETURNING o.id
),
-- `attempts` as claimed: this statement's snapshot, before `rescheduled` gives a released
-- attempt back. A rescue may have written this claim as 'rescued' (its lease ran out, then
-- its outcome arrived after all): the real outcome replaces it. The error is kept to one line.
recorded AS (
    INSERT INTO invoice_sync.attempt AS a (outbox_id, claim, account, idempotency_key, attempt,
                                           worker, provider, started_at, duration_ms,
                                           http_status, outcome, reason, error, response,
                                           outcome_unknown, calls)
    SELECT id, claim, account, idempotency_key, attempts, $1, provider, started_at,
           greatest(duration_ms, 0), coalesce(http_status, create_status), outcome,
           coalesce(reason, attempt_reason), translate(error, E'\r\n', '  '), response,
           kind = 'retry' AND coalesce(unknown, false), calls
      FROM owned WHERE outcome IS NOT NULL
    ON CONFLICT (outbox_id, claim) DO UPDATE SET
        worker = excluded.worker, provider = excluded.provider, started_at = excluded.started_at,
        duration_ms = excluded.duration_ms, http_status = excluded.http_status,
        outcome = excluded.outcome, reason = excluded.reason, error = excluded.error,
        response = excluded.response, outcome_unknown = excluded.outcome_unknown,
        calls = excluded.calls
    RETURNING 1
)
SELECT coalesce((SELECT array_agg(id) FROM owned), '{}') AS applied,
       (SELECT count(*) FROM to_synced) AS synced,
       (SELECT count(*) FROM to_dead) AS dead,
       (SELECT count(*) FROM removed) AS removed,
       (SELECT count(*) FROM rescheduled) AS rescheduled,
       (SELECT count(*) FROM recorded) AS recorded;

-- name: outbox_rescue
-- Return rows whose lease expired (their worker died or stalled) to pending. outcome_unknown
-- stays true, so the next attempt knows the last one may have reached the provider. Each
-- gets its attempt's row in the history, outcome `rescued`: started when it was claimed (the
-- claim set updated_at, nothing touches a running row since), unknown outcome. Should the
-- worker's own outcome arrive after all, outbox_record replaces that row.
WITH expired AS (
    SELECT id, account, idempotency_key, attempts, claims, lease_owner, updated_at
      FROM invoice_sync.outbox
     WHERE state = 'running' AND lease_expires_at < now()
     ORDER BY lease_expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
),
rescued AS (
    UPDATE invoice_sync.outbox o
       SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, available_at = now(),
           updated_at = now()
      FROM expired
     WHERE o.id = expired.id
    RETURNING o.id, o.account, o.attempts
),
recorded AS (
    INSERT INTO invoice_sync.attempt (outbox_id, claim, account, idempotency_key, attempt,
                                      worker, started_at, duration_ms, outcome, error,
                                      outcome_unknown)
    SELECT e.id, e.claims, e.account, e.idempotency_key, e.attempts,
           coalesce(e.lease_owner, 'unknown'), e.updated_at,
           greatest(0, round(extract(epoch FROM now() - e.updated_at) * 1000))::int, 'rescued',
           'its lease ran out before its worker wrote an outcome (stopped or stalled): it may '
           || 'have reached the provider, so the next attempt takes the safe path',
           true
      FROM expired e
    ON CONFLICT (outbox_id, claim) DO NOTHING
)
SELECT id, account, attempts FROM rescued;

-- name: attempt_prune
-- Delete at most $2 attempt rows that started more than $1 seconds ago, never a synced or
-- dead_letter one (they end an invoice's story). Bounded, so a large backlog of old rows is
-- pruned in short statements; the ids as an array, so each is deleted by its location.
WITH doomed AS (
    SELECT ctid FROM invoice_sync.attempt
     WHERE started_at < now() - make_interval(secs => $1::float8)
       AND outcome NOT IN ('synced', 'dead_letter')
     LIMIT $2
),
deleted AS (
    DELETE FROM invoice_sync.attempt
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM doomed))
    RETURNING 1
)
SELECT count(*) FROM deleted;

-- name: outbox_unfinished
-- How many rows are pending (due or scheduled) or in flight of the accounts named in $1 (a
-- config file's) and, when $2, of every enabled account of invoice_sync.account, less those
-- named in $3 (found unusable: their rows wait for their row to change), leaving out accounts
-- that are paused (they wait for a human; `run --drain` must not wait for them).
SELECT count(*) FILTER (WHERE s.paused IS NOT TRUE) AS unfinished,
       count(*) FILTER (WHERE s.paused) AS held_by_paused
  FROM invoice_sync.outbox o
  LEFT JOIN invoice_sync.account_state s ON s.account = o.account
 WHERE (o.account = ANY($1::text[])
        OR ($2 AND EXISTS (SELECT 1 FROM invoice_sync.account a
                            WHERE a.name = o.account AND a.enabled)))
   AND o.account <> ALL($3::text[]);

-- name: account_apply
-- Pause or throttle accounts ($1, a JSON array with at most one entry per account). A pause
-- keeps its first paused_at; a throttle only ever extends.
WITH action AS (
    SELECT *
      FROM jsonb_to_recordset($1::jsonb) AS a(
          account text, pause_reason text, pause_error text, probe_in float8, throttle float8)
)
INSERT INTO invoice_sync.account_state AS s (account, paused, pause_reason, pause_error,
                                             paused_at, probe_at, throttled_until)
SELECT account, pause_reason IS NOT NULL, pause_reason, pause_error,
       CASE WHEN pause_reason IS NOT NULL THEN now() END,
       now() + make_interval(secs => probe_in),
       now() + make_interval(secs => throttle)
  FROM action
ON CONFLICT (account) DO UPDATE SET
    paused = s.paused OR excluded.paused,
    pause_reason = CASE WHEN excluded.paused THEN excluded.pause_reason ELSE s.pause_reason END,
    pause_error = CASE WHEN excluded.paused THEN excluded.pause_error ELSE s.pause_error END,
    paused_at = CASE WHEN excluded.paused AND NOT s.paused THEN now() ELSE s.paused_at END,
    probe_at = CASE WHEN excluded.paused THEN excluded.probe_at ELSE s.probe_at END,
    throttled_until = greatest(s.throttled_until, excluded.throttled_until),
    updated_at = now()
RETURNING account, paused, pause_reason;

-- name: account_pause
-- An operator's pause: no probes; only `accounts resume` ends it.
INSERT INTO invoice_sync.account_state AS s (account, paused, pause_reason, pause_error, paused_at)
VALUES ($1, true, 'operator', $2, now())
ON CONFLICT (account) DO UPDATE SET
    paused = true, pause_reason = 'operator', pause_error = $2, paused_at = now(),
    probe_at = NULL, updated_at = now()
RETURNING account;

-- name: account_resume
-- Resume an account now, whatever paused it.
UPDATE invoice_sync.account_state
   SET paused = false, pause_reason = NULL, pause_error = NULL, paused_at = NULL, probe_at = NULL,
       throttled_until = NULL, updated_at = now()
 WHERE account = $1
RETURNING account;

-- name: account_state_list
-- Every account with stored state (paused, throttled, or once was).
SELECT account, paused, pause_reason, pause_error, paused_at, probe_at, throttled_until
  FROM invoice_sync.account_state
 ORDER BY account;

-- name: status_outbox
-- Outbox rows by account and state, with the oldest pending row's age in seconds.
SELECT account, state, count(*) AS count,
       extract(epoch FROM now() - min(created_at)) AS oldest_age,
       count(*) FILTER (WHERE outcome_unknown AND state = 'pending') AS unknown_outcome,
       count(*) FILTER (WHERE available_at > now()) AS scheduled
  FROM invoice_sync.outbox
 GROUP BY account, state
 ORDER BY account, state;

-- name: status_synced
-- Synced invoices by account, and how many were recovered by a lookup.
SELECT account, count(*) AS count, count(*) FILTER (WHERE recovered) AS recovered,
       count(*) FILTER (WHERE synced_at > now() - interval '1 minute') AS last_minute
  FROM invoice_sync.synced
 GROUP BY account
 ORDER BY account;

-- name: status_dead_letter
-- Dead letters not yet replayed, by account and reason.
SELECT account, reason, count(*) AS count
  FROM invoice_sync.dead_letter
 WHERE replayed_at IS NULL
 GROUP BY account, reason
 ORDER BY account, reason;

-- name: enqueue_staging_create
-- A per-transaction staging table that COPY fills, so a chunk lands in one INSERT.
CREATE TEMP TABLE enqueue_staging (
    account text NOT NULL,
    idempotency_key text NOT NULL,
    payload jsonb NOT NULL,
    available_at timestamptz,
    traceparent text
) ON COMMIT DROP;

-- name: enqueue_bulk_mode
-- Tells outbox_skip_synced that this transaction's INSERT leaves out synced and cancelled keys
-- itself (the trigger honours it only for a role that is not a producer: migration 014).
SET LOCAL invoice_sync.bulk = on;

-- name: enqueue_without_jit
-- No JIT compilation in the load's transaction: the staging table has no statistics, so the
-- planner overestimates enqueue_drop_finished and compiled it for every chunk (20-30 ms of a
-- 5,000-row chunk, 4-6 µs a row, to run a scan that finds nothing).
SET LOCAL jit = off;

-- name: enqueue_from_staging
-- Insert the staged chunk; repeated keys (in the chunk, the outbox or synced) are skipped.
-- Synced and cancelled keys, and keys of an open dead letter whose outcome is unknown (017),
-- are left out by one anti-join over the chunk, which the per-row check of outbox_skip_synced
-- would otherwise repeat row by row (enqueue_bulk_mode).
WITH inserted AS (
    INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, available_at,
                                     traceparent)
    SELECT e.account, e.idempotency_key, e.payload, coalesce(e.available_at, now()),
           e.traceparent
      FROM enqueue_staging e
     WHERE NOT EXISTS (SELECT FROM invoice_sync.synced s
                        WHERE s.account = e.account AND s.idempotency_key = e.idempotency_key)
       AND NOT EXISTS (SELECT FROM invoice_sync.cancelled c
                        WHERE c.account = e.account AND c.idempotency_key = e.idempotency_key)
       AND NOT EXISTS (SELECT FROM invoice_sync.dead_letter d
                        WHERE d.account = e.account AND d.idempotency_key = e.idempotency_key
                          AND d.replayed_at IS NULL AND d.outcome_unknown)
    ON CONFLICT (account, idempotency_key) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM inserted;

-- name: enqueue_fresh_from_staging
-- enqueue_from_staging for a chunk that repeats no key, tried first: a plain INSERT, without
-- ON CONFLICT's speculative insertion (a third of the INSERT's cost a row). A staged key already
-- in the outbox (queued before, or by a producer while this runs) fails the whole statement on
-- outbox_account_key; the caller runs it in a savepoint and, on that error, rolls back to it and
-- runs enqueue_from_staging, which skips such keys. Synced and cancelled keys are left out as
-- there. How many rows went in is the command's status (INSERT 0 n).
INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, available_at, traceparent)
SELECT e.account, e.idempotency_key, e.payload, coalesce(e.available_at, now()), e.traceparent
  FROM enqueue_staging e
 WHERE NOT EXISTS (SELECT FROM invoice_sync.synced s
                    WHERE s.account = e.account AND s.idempotency_key = e.idempotency_key)
   AND NOT EXISTS (SELECT FROM invoice_sync.cancelled c
                    WHERE c.account = e.account AND c.idempotency_key = e.idempotency_key)
   AND NOT EXISTS (SELECT FROM invoice_sync.dead_letter d
                    WHERE d.account = e.account AND d.idempotency_key = e.idempotency_key
                      AND d.replayed_at IS NULL AND d.outcome_unknown);

-- name: enqueue_drop_finished
-- Run after the chunk's INSERT (enqueue_fresh_from_staging or enqueue_from_staging), as a
-- statement of its own: its snapshot sees a key synced or cancelled by a transaction that
-- committed while the INSERT ran (the INSERT waited for the outbox row that transaction
-- deleted, then found no conflict). The per-row trigger would have
-- caught most of those; this catches all. An outbox row beside a synced or cancelled key is
-- never legitimate, so whatever it finds among the staged keys goes. Returns how many.
WITH dropped AS (
    DELETE FROM invoice_sync.outbox o
     USING enqueue_staging e
     WHERE o.account = e.account AND o.idempotency_key = e.idempotency_key
       AND o.state = 'pending'
       AND (EXISTS (SELECT FROM invoice_sync.synced s
                     WHERE s.account = e.account AND s.idempotency_key = e.idempotency_key)
            OR EXISTS (SELECT FROM invoice_sync.cancelled c
                        WHERE c.account = e.account AND c.idempotency_key = e.idempotency_key)
            OR (o.replayed_from IS NULL
                AND EXISTS (SELECT FROM invoice_sync.dead_letter d
                             WHERE d.account = e.account
                               AND d.idempotency_key = e.idempotency_key
                               AND d.replayed_at IS NULL AND d.outcome_unknown)))
    RETURNING 1
)
SELECT count(*) FROM dropped;

-- name: migrations_lock
-- `invoice-sync migrate`: one migrator at a time (replicas may start together), on the key $1.
SELECT pg_advisory_lock($1);

-- name: migrations_unlock
SELECT pg_advisory_unlock($1);

-- name: migrations_schema_create
-- Where the applied migrations are recorded, made before the first migration runs.
CREATE SCHEMA IF NOT EXISTS invoice_sync;

-- name: migrations_table_create
CREATE TABLE IF NOT EXISTS invoice_sync.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migrations_record
-- In the migration's own transaction: the migration and its row commit together.
INSERT INTO invoice_sync.schema_migrations (version, name) VALUES ($1, $2);

-- name: migrations_applied
-- Versions already applied to this database.
SELECT version FROM invoice_sync.schema_migrations ORDER BY version;

-- name: metrics_outbox
-- Unfinished rows (pending or running) per account and the oldest one's age in seconds, for
-- the gauges the metrics chore refreshes on an interval (never per scrape); `mine`: whether
-- the replica asking works the account, as outbox_unfinished counts them ($1 its config file's
-- names; $2 whether it works the enabled accounts of invoice_sync.account; $3 less these).
SELECT account, count(*) AS unfinished, extract(epoch FROM now() - min(created_at)) AS oldest_age,
       (account = ANY($1::text[])
        OR ($2 AND EXISTS (SELECT 1 FROM invoice_sync.account a
                            WHERE a.name = o.account AND a.enabled)))
       AND account <> ALL($3::text[]) AS mine
  FROM invoice_sync.outbox o
 GROUP BY account;

-- name: replica_account_announce
-- This replica works accounts $1 (sorted, so replicas announcing together lock the rows in one
-- order) for at least the next $2 seconds. Another replica's later expiry is kept.
INSERT INTO invoice_sync.replica_account AS r (account, announced_at, expires_at)
SELECT account, now(), now() + make_interval(secs => $2)
  FROM unnest($1::text[]) AS a(account)
ON CONFLICT (account) DO UPDATE SET
    announced_at = now(),
    expires_at = greatest(r.expires_at, excluded.expires_at);

-- name: replica_account_live
-- The accounts some running replica is configured for (its announcement has not run out).
SELECT account FROM invoice_sync.replica_account WHERE expires_at > now() ORDER BY account;

-- name: dead_letter_list
-- Dead letters, newest first, filtered by $1 reason, $2 account, $3 dead since (each NULL for
-- any), $4 whether replayed rows are included; at most $5 rows (NULL for all).
SELECT outbox_id AS id, account, idempotency_key, reason, error, http_status, attempts,
       first_attempt_at, dead_at, replayed_at, replayed_to
  FROM invoice_sync.dead_letter
 WHERE ($1::text IS NULL OR reason = $1)
   AND ($2::text IS NULL OR account = $2)
   AND ($3::timestamptz IS NULL OR dead_at >= $3)
   AND ($4::boolean OR replayed_at IS NULL)
 ORDER BY dead_at DESC, outbox_id DESC
 LIMIT $5::bigint;

-- name: dead_letter_show
-- One dead letter, everything about it (payload and provider response as JSON text).
SELECT outbox_id AS id, account, idempotency_key, payload::text AS payload, reason, error,
       http_status, response::text AS response, attempts, first_attempt_at, dead_at,
       replayed_at, replayed_to
  FROM invoice_sync.dead_letter
 WHERE outbox_id = $1;

-- name: dead_letter_replay
-- Move the dead letters $1 (ids) back to the outbox as new pending rows with no attempts,
-- with payload $2 instead of the stored one when it is not NULL (the producer's traceparent
-- kept either way), and record the replay.
-- Refused, and left as they are: rows already replayed, keys already synced (never sent
-- twice), keys already in the outbox, keys cancelled since (migration 010) (a producer re-enqueued them, or a row of this batch
-- with the same key took the place), payloads over the outbox's 256 KiB limit (migration
-- 006; a corrected payload can shorten one). Returns one row per dead letter found.
WITH chosen AS (
    -- The row lock makes two concurrent replays of one dead letter wait for each other; the
    -- second then sees replayed_at set and refuses.
    SELECT d.outbox_id, d.account, d.idempotency_key, coalesce($2::jsonb, d.payload) AS payload,
           d.replayed_at, d.traceparent
      FROM invoice_sync.dead_letter d
     WHERE d.outbox_id = ANY($1::bigint[])
       FOR UPDATE
),
verdict AS (
    SELECT c.*,
           CASE
               WHEN c.replayed_at IS NOT NULL THEN 'already_replayed'
               WHEN EXISTS (SELECT 1 FROM invoice_sync.synced s
                             WHERE s.account = c.account
                               AND s.idempotency_key = c.idempotency_key) THEN 'synced'
               WHEN EXISTS (SELECT 1 FROM invoice_sync.outbox o
                             WHERE o.account = c.account
                               AND o.idempotency_key = c.idempotency_key) THEN 'in_outbox'
               WHEN EXISTS (SELECT 1 FROM invoice_sync.cancelled x
                             WHERE x.account = c.account
                               AND x.idempotency_key = c.idempotency_key) THEN 'cancelled'
               WHEN octet_length(c.payload::text) > 262144 THEN 'too_large'
           END AS refused
      FROM chosen c
),
inserted AS (
    -- ON CONFLICT covers two dead letters of one key in this batch (the first wins) and a
    -- producer racing us; the outbox's BEFORE INSERT trigger skips a key synced meanwhile.
    INSERT INTO invoice_sync.outbox (account, idempotency_key, payload, replayed_from,
                                     traceparent)
    SELECT account, idempotency_key, payload, outbox_id, traceparent
      FROM verdict
     WHERE refused IS NULL
     ORDER BY outbox_id
    ON CONFLICT (account, idempotency_key) DO NOTHING
    RETURNING id, replayed_from
),
marked AS (
    UPDATE invoice_sync.dead_letter d
       SET replayed_at = now(), replayed_to = i.id
      FROM inserted i
     WHERE d.outbox_id = i.replayed_from
    RETURNING d.outbox_id
)
SELECT v.outbox_id AS id, v.account, v.idempotency_key, i.id AS replayed_to,
       CASE WHEN i.id IS NULL THEN coalesce(v.refused, 'in_outbox') END AS refused
  FROM verdict v
  LEFT JOIN inserted i ON i.replayed_from = v.outbox_id
 ORDER BY v.outbox_id;

-- name: dead_letter_purge
-- Delete dead letters that died more than $1 seconds ago, of reason $2 and account $3 (NULL
-- for any); with $4 true nothing is deleted. Counts by account and reason either way.
WITH doomed AS (
    SELECT outbox_id, account, reason
      FROM invoice_sync.dead_letter
     WHERE dead_at < now() - make_interval(secs => $1::float8)
       AND ($2::text IS NULL OR reason = $2)
       AND ($3::text IS NULL OR account = $3)
),
deleted AS (
    DELETE FROM invoice_sync.dead_letter d
     USING doomed
     WHERE d.outbox_id = doomed.outbox_id AND NOT $4::boolean
    RETURNING d.outbox_id
)
SELECT account, reason, count(*) AS count, (SELECT count(*) FROM deleted) AS deleted
  FROM doomed
 GROUP BY account, reason
 ORDER BY account, reason;

-- name: status_watch_start
-- The database's clock: `status --watch` counts finished rows from this instant.
SELECT now() AS started_at;

-- name: status_watch_remaining
-- Unfinished rows by account and state. Each half reads one of the outbox's partial indexes
-- (claim: pending, lease: running), so the cost follows the rows left, not the table's churn.
SELECT account, 'pending' AS state, count(*) AS count
  FROM invoice_sync.outbox
 WHERE state = 'pending'
 GROUP BY account
UNION ALL
SELECT account, 'running' AS state, count(*) AS count
  FROM invoice_sync.outbox
 WHERE state = 'running'
 GROUP BY account;

-- name: status_watch_finished
-- Rows finished since $1, by account: synced, and dead-lettered by reason. Range scans of the
-- synced_at and dead_at indexes (migration 002), never the whole history.
SELECT account, 'synced' AS kind, NULL::text AS reason, count(*) AS count
  FROM invoice_sync.synced
 WHERE synced_at >= $1
 GROUP BY account
UNION ALL
SELECT account, 'dead' AS kind, reason, count(*) AS count
  FROM invoice_sync.dead_letter
 WHERE dead_at >= $1
 GROUP BY account, reason;

-- name: demo_database_drop
-- `invoice-sync demo` on its embedded server: every run starts from an empty database.
DROP DATABASE IF EXISTS invoice_sync_demo WITH (FORCE);

-- name: demo_database_create
CREATE DATABASE invoice_sync_demo;

-- name: demo_rows_delete
-- `invoice-sync demo --use-configured-database` on its way out: every row it wrote, by its
-- accounts ($1, names no one else uses). One statement, so the rows go together or not at all.
WITH outbox AS (DELETE FROM invoice_sync.outbox WHERE account = ANY($1::text[]) RETURNING 1),
     synced AS (DELETE FROM invoice_sync.synced WHERE account = ANY($1::text[]) RETURNING 1),
     dead AS (DELETE FROM invoice_sync.dead_letter WHERE account = ANY($1::text[]) RETURNING 1),
     state AS (DELETE FROM invoice_sync.account_state WHERE account = ANY($1::text[]) RETURNING 1),
     bucket AS (DELETE FROM invoice_sync.rate_bucket WHERE account = ANY($1::text[]) RETURNING 1),
     replica AS (DELETE FROM invoice_sync.replica_account WHERE account = ANY($1::text[])
                 RETURNING 1)
SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM synced) + (SELECT count(*) FROM dead)
       + (SELECT count(*) FROM state) + (SELECT count(*) FROM bucket)
       + (SELECT count(*) FROM replica) AS deleted;

-- name: demo_progress
-- One demo run's rows (keys starting with $1) by account: synced, dead letters by reason, and
-- what is still in the outbox by state; `retried` counts attempts beyond the first, `recovered`
-- synced rows whose lost answer a lookup found.
SELECT account, 'synced' AS kind, '' AS detail, count(*) AS count,
       coalesce(sum(greatest(attempts - 1, 0)), 0) AS retried,
       count(*) FILTER (WHERE recovered) AS recovered
  FROM invoice_sync.synced
 WHERE starts_with(idempotency_key, $1)
 GROUP BY account
UNION ALL
SELECT account, 'dead', reason, count(*), coalesce(sum(greatest(attempts - 1, 0)), 0), 0
  FROM invoice_sync.dead_letter
 WHERE starts_with(idempotency_key, $1) AND replayed_at IS NULL
 GROUP BY account, reason
UNION ALL
SELECT account, 'outbox',
       CASE WHEN state = 'running' THEN 'running' WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END,
       count(*), coalesce(sum(attempts), 0), 0
  FROM invoice_sync.outbox
 WHERE starts_with(idempotency_key, $1)
 GROUP BY 1, 3;

-- name: demo_examples
-- One synced invoice's link per account of a demo run, for the summary.
SELECT DISTINCT ON (account) account, provider, invoice_number, link
  FROM invoice_sync.synced
 WHERE starts_with(idempotency_key, $1) AND link IS NOT NULL
 ORDER BY account, outbox_id;

-- name: audit_append
-- One operator action ($1 actor, $2 action, $3 target JSON, $4 rows touched, $5 reason), in the
-- caller's transaction so the entry commits with the action or not at all.
INSERT INTO invoice_sync.audit (actor, action, target, rows, reason)
VALUES ($1, $2, $3::jsonb, $4, $5)
RETURNING id;

-- name: audit_list
-- The newest entries first, before id $1 (keyset; NULL starts at the newest), at most $2.
SELECT id, at, actor, action, target::text AS target, rows, reason
  FROM invoice_sync.audit
 WHERE $1::bigint IS NULL OR id < $1
 ORDER BY id DESC
 LIMIT $2;

-- name: console_accounts
-- Every account with rows or state. The recursive parts are loose index scans: one index
-- probe per distinct account, so a million rows of three accounts cost three probes a table.
WITH RECURSIVE
outbox_accounts(account) AS (
    SELECT min(account) FROM invoice_sync.outbox
    UNION ALL
    SELECT (SELECT min(o.account) FROM invoice_sync.outbox o WHERE o.account > a.account)
      FROM outbox_accounts a
     WHERE a.account IS NOT NULL
),
synced_accounts(account) AS (
    SELECT min(account) FROM invoice_sync.synced
    UNION ALL
    SELECT (SELECT min(s.account) FROM invoice_sync.synced s WHERE s.account > a.account)
      FROM synced_accounts a
     WHERE a.account IS NOT NULL
),
dead_accounts(account) AS (
    SELECT min(account) FROM invoice_sync.dead_letter
    UNION ALL
    SELECT (SELECT min(d.account) FROM invoice_sync.dead_letter d WHERE d.account > a.account)
      FROM dead_accounts a
     WHERE a.account IS NOT NULL
),
cancelled_accounts(account) AS (
    SELECT min(account) FROM invoice_sync.cancelled
    UNION ALL
    SELECT (SELECT min(c.account) FROM invoice_sync.cancelled c WHERE c.account > a.account)
      FROM cancelled_accounts a
     WHERE a.account IS NOT NULL
)
SELECT account FROM outbox_accounts WHERE account IS NOT NULL
UNION SELECT account FROM synced_accounts WHERE account IS NOT NULL
UNION SELECT account FROM dead_accounts WHERE account IS NOT NULL
UNION SELECT account FROM cancelled_accounts WHERE account IS NOT NULL
UNION SELECT account FROM invoice_sync.account_state
UNION SELECT account FROM invoice_sync.replica_account
ORDER BY 1;

-- name: console_outbox_counts
-- Per account of $1: pending rows counted up to $2 (an exact count of a million-row backlog
-- would read the whole index at every page view; the page says "at least $2"), rows in
-- flight, and the earliest available_at of a pending row (the claim index's first entry).
SELECT a.account,
       (SELECT count(*) FROM (SELECT FROM invoice_sync.outbox o
                               WHERE o.account = a.account AND o.state = 'pending'
                               LIMIT $2) p) AS pending,
       (SELECT count(*) FROM invoice_sync.outbox o
         WHERE o.account = a.account AND o.state = 'running') AS running,
       (SELECT min(o.available_at) FROM invoice_sync.outbox o
         WHERE o.account = a.account AND o.state = 'pending') AS first_available_at
  FROM unnest($1::text[]) AS a(account)
 ORDER BY a.account;

-- name: console_outbox_estimate
-- The planner's row estimate for the outbox (kept by autovacuum): the size of a backlog too
-- large to count per page view.
SELECT greatest(reltuples, 0)::bigint AS estimate
  FROM pg_catalog.pg_class
 WHERE oid = 'invoice_sync.outbox'::regclass;

-- name: console_throughput
-- Synced and dead-lettered rows per account and minute over the last $1 minutes; both read
-- only their time index (index-only scans: the indexes include the account).
SELECT 'synced' AS kind, account, date_trunc('minute', synced_at) AS minute, count(*) AS count
  FROM invoice_sync.synced
 WHERE synced_at >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
 GROUP BY account, minute
UNION ALL
SELECT 'dead' AS kind, account, date_trunc('minute', dead_at) AS minute, count(*) AS count
  FROM invoice_sync.dead_letter
 WHERE dead_at >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
 GROUP BY account, minute;

-- name: console_rate_budget
-- Each account's deployment-wide token bucket: tokens now, refill rate, burst.
SELECT account, invoice_sync.rate_bucket_level(tokens, refilled_at, rate, burst) AS tokens,
       rate, burst
  FROM invoice_sync.rate_bucket
 ORDER BY account;

-- name: console_invoice_page
-- Invoices of every account in (account, key) order after ($1, $2), at most $3: the outbox,
-- synced, dead letters not replayed and cancelled rows, each read on its (account, idempotency_key) index
-- from the cursor on, so a page costs $3 rows a table whatever the tables hold.
WITH o AS (
    SELECT account, idempotency_key, id AS outbox_id, state, payload->>'number' AS invoice_number,
           NULL::text AS provider_invoice_id, attempts, updated_at AS at, last_error AS note
      FROM invoice_sync.outbox
     WHERE (account, idempotency_key) > ($1, $2)
     ORDER BY account, idempotency_key
     LIMIT $3
), s AS (
    SELECT account, idempotency_key, outbox_id, 'synced' AS state, invoice_number,
           provider_invoice_id, attempts, synced_at AS at, NULL::text AS note
      FROM invoice_sync.synced
     WHERE (account, idempotency_key) > ($1, $2)
     ORDER BY account, idempotency_key
     LIMIT $3
), d AS (
    SELECT account, idempotency_key, outbox_id, 'dead' AS state, payload->>'number',
           NULL::text, attempts, dead_at, reason
      FROM invoice_sync.dead_letter
     WHERE (account, idempotency_key) > ($1, $2) AND replayed_at IS NULL
     ORDER BY account, idempotency_key
     LIMIT $3
), c AS (
    SELECT account, idempotency_key, outbox_id, 'cancelled' AS state, payload->>'number',
           NULL::text, attempts, cancelled_at, reason
      FROM invoice_sync.cancelled
     WHERE (account, idempotency_key) > ($1, $2)
     ORDER BY account, idempotency_key
     LIMIT $3
)
SELECT * FROM (SELECT * FROM o UNION ALL SELECT * FROM s UNION ALL SELECT * FROM d
               UNION ALL SELECT * FROM c) AS page
 ORDER BY account, idempotency_key, outbox_id
 LIMIT $3;

-- name: console_invoice_page_account
-- The same for one account $1, keys after $2, at most $3.
WITH o AS (
    SELECT account, idempotency_key, id AS outbox_id, state, payload->>'number' AS invoice_number,
           NULL::text AS provider_invoice_id, attempts, updated_at AS at, last_error AS note
      FROM invoice_sync.outbox
     WHERE account = $1 AND idempotency_key > $2
     ORDER BY idempotency_key
     LIMIT $3
), s AS (
    SELECT account, idempotency_key, outbox_id, 'synced' AS state, invoice_number,
           provider_invoice_id, attempts, synced_at AS at, NULL::text AS note
      FROM invoice_sync.synced
     WHERE account = $1 AND idempotency_key > $2
     ORDER BY idempotency_key
     LIMIT $3
), d AS (
    SELECT account, idempotency_key, outbox_id, 'dead' AS state, payload->>'number',
           NULL::text, attempts, dead_at, reason
      FROM invoice_sync.dead_letter
     WHERE account = $1 AND idempotency_key > $2 AND replayed_at IS NULL
     ORDER BY idempotency_key
     LIMIT $3
), c AS (
    SELECT account, idempotency_key, outbox_id, 'cancelled' AS state, payload->>'number',
           NULL::text, attempts, cancelled_at, reason
      FROM invoice_sync.cancelled
     WHERE account = $1 AND idempotency_key > $2
     ORDER BY idempotency_key
     LIMIT $3
)
SELECT * FROM (SELECT * FROM o UNION ALL SELECT * FROM s UNION ALL SELECT * FROM d
               UNION ALL SELECT * FROM c) AS page
 ORDER BY account, idempotency_key, outbox_id
 LIMIT $3;

-- name: console_invoice_find
-- Invoices whose idempotency key, invoice number or provider id is exactly $1, among the
-- accounts $2, at most $3. A key is looked up on each table's (account, idempotency_key)
-- index, one probe per account (cancelled rows too, on their unique key); numbers and provider
-- ids on the indexes of migration 009.
-- An outbox row's number is inside its payload and not indexed (the outbox is the hot table):
-- a pending invoice is found by its key.
WITH hits AS (
    SELECT account, idempotency_key, id AS outbox_id, state, payload->>'number' AS invoice_number,
           NULL::text AS provider_invoice_id, attempts, updated_at AS at, last_error AS note
      FROM invoice_sync.outbox
     WHERE account = ANY($2::text[]) AND idempotency_key = $1
    UNION ALL
    SELECT account, idempotency_key, outbox_id, 'synced', invoice_number, provider_invoice_id,
           attempts, synced_at, NULL
      FROM invoice_sync.synced
     WHERE (account = ANY($2::text[]) AND idempotency_key = $1)
        OR invoice_number = $1 OR provider_invoice_id = $1
    UNION ALL
    SELECT account, idempotency_key, outbox_id, 'dead', payload->>'number', NULL, attempts,
           dead_at, reason
      FROM invoice_sync.dead_letter
     WHERE replayed_at IS NULL
       AND ((account = ANY($2::text[]) AND idempotency_key = $1) OR payload->>'number' = $1)
    UNION ALL
    SELECT account, idempotency_key, outbox_id, 'cancelled', payload->>'number', NULL, attempts,
           cancelled_at, reason
      FROM invoice_sync.cancelled
     WHERE account = ANY($2::text[]) AND idempotency_key = $1
)
SELECT * FROM hits
 WHERE account = ANY($2::text[])
 ORDER BY account, idempotency_key, outbox_id
 LIMIT $3;

-- name: console_dead_letter_page
-- Dead letters not replayed, newest first, filtered by $1 reason, $2 account, $3 dead at
-- least that many seconds ago (each NULL for any), after the cursor ($4 dead_at, $5 id; NULL
-- for the first page), at most $6. Read backwards on the dead_at index.
SELECT outbox_id AS id, account, idempotency_key, reason, error, http_status, attempts, dead_at
  FROM invoice_sync.dead_letter
 WHERE replayed_at IS NULL
   AND ($1::text IS NULL OR reason = $1)
   AND ($2::text IS NULL OR account = $2)
   AND ($3::float8 IS NULL OR dead_at < now() - make_interval(secs => $3))
   AND ($4::timestamptz IS NULL OR (dead_at, outbox_id) < ($4, $5::bigint))
 ORDER BY dead_at DESC, outbox_id DESC
 LIMIT $6;

-- name: console_dead_letter_preview
-- The ids a bulk action on the filter ($1 reason, $2 account, $3 older than seconds) would
-- touch, oldest first, at most $4. The preview shows how many and its form carries them: the
-- action then touches these rows and no other (console_dead_letter_select).
SELECT outbox_id AS id
  FROM invoice_sync.dead_letter
 WHERE replayed_at IS NULL
   AND ($1::text IS NULL OR reason = $1)
   AND ($2::text IS NULL OR account = $2)
   AND ($3::float8 IS NULL OR dead_at < now() - make_interval(secs => $3))
 ORDER BY dead_at, outbox_id
 LIMIT $4;

-- name: console_dead_letter_select
-- Of the ids $4 the operator confirmed, those the filter ($1 reason, $2 account, $3 older than
-- seconds) still selects, locked for the action's transaction. Rows that joined the filter
-- since the preview (a worker dead-lettered them, or they aged past older_than) are not among
-- $4, so they are never touched; fewer rows than $4 means some were replayed or purged
-- meanwhile, and the action is refused rather than done on a set nobody confirmed.
SELECT outbox_id AS id
  FROM invoice_sync.dead_letter
 WHERE outbox_id = ANY($4::bigint[])
   AND replayed_at IS NULL
   AND ($1::text IS NULL OR reason = $1)
   AND ($2::text IS NULL OR account = $2)
   AND ($3::float8 IS NULL OR dead_at < now() - make_interval(secs => $3))
 ORDER BY outbox_id
   FOR UPDATE;

-- name: console_dead_letter_delete
-- Delete the dead letters $1 (ids); how many went.
WITH deleted AS (
    DELETE FROM invoice_sync.dead_letter WHERE outbox_id = ANY($1::bigint[]) RETURNING 1
)
SELECT count(*) FROM deleted;

-- name: story_rows
-- Every row one key ($1 account, $2 idempotency key) has had: the outbox row (pending or in
-- flight), its synced or cancelled row, and its dead letters, replays included (a replay makes
-- a new outbox row of the same key, so the key finds the whole chain). One shape for all four
-- places; cancelled_by only for a cancelled row.
SELECT 'outbox' AS place, id AS outbox_id, state, updated_at AS at, available_at, attempts,
       NULL::text AS reason, last_error AS error, NULL::int AS http_status, NULL::text AS provider,
       NULL::text AS provider_invoice_id, NULL::text AS invoice_number, NULL::text AS link,
       NULL::text AS pdf_url, NULL::boolean AS recovered, replayed_from,
       NULL::bigint AS replayed_to, NULL::text AS cancelled_by
  FROM invoice_sync.outbox
 WHERE account = $1 AND idempotency_key = $2
UNION ALL
SELECT 'synced', outbox_id, NULL, synced_at, NULL, attempts, NULL, NULL, NULL, provider,
       provider_invoice_id, invoice_number, link, pdf_url, recovered, NULL, NULL, NULL
  FROM invoice_sync.synced
 WHERE account = $1 AND idempotency_key = $2
UNION ALL
SELECT 'cancelled', outbox_id, NULL, cancelled_at, NULL, attempts, reason, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, cancelled_by
  FROM invoice_sync.cancelled
 WHERE account = $1 AND idempotency_key = $2
UNION ALL
SELECT 'dead_letter', outbox_id, NULL, dead_at, NULL, attempts, reason, error, http_status, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, replayed_to, NULL
  FROM invoice_sync.dead_letter
 WHERE account = $1 AND idempotency_key = $2
 ORDER BY outbox_id;

-- name: story_attempts
-- One key's attempts ($1 account, $2 idempotency key), across its replays, oldest first.
SELECT outbox_id, claim, attempt, worker, provider, started_at, duration_ms, http_status,
       outcome, reason, error, response::text AS response, outcome_unknown, calls::text AS calls
  FROM invoice_sync.attempt
 WHERE account = $1 AND idempotency_key = $2
 ORDER BY started_at, outbox_id, claim;
-- name: invoice_result
-- One key's outcome through invoice_sync.result() (migration 010): the producers' contract.
SELECT state, provider_invoice_id, invoice_number, link, pdf_url, reason, error, attempts,
       updated_at
  FROM invoice_sync.result($1, $2);

-- name: invoice_cancel
-- Withdraw account $1's key $2 if no attempt is under way ($3 the reason); the state it ends in.
SELECT invoice_sync.cancel($1, $2, $3) AS state;

-- name: cancelled_in_transaction
-- Whether the caller's transaction is the one that cancelled account $1's key $2: its row's
-- cancelled_at is this transaction's now() (an earlier cancel's is an earlier instant).
SELECT EXISTS (SELECT FROM invoice_sync.cancelled
                WHERE account = $1 AND idempotency_key = $2 AND cancelled_at = now());

-- name: status_cancelled
-- Cancelled rows by account.
SELECT account, count(*) AS count
  FROM invoice_sync.cancelled
 GROUP BY account
 ORDER BY account;

-- name: result_notify_skipped
-- How many result notifications were skipped because the notification queue was too full.
SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS skipped
  FROM invoice_sync.result_notify_skipped;
-- name: account_rows
-- Every database-held account, secrets as ciphertext (replicas decrypt them in memory).
SELECT name, provider, options::text AS options, rate_limit, concurrency, enabled,
       secret, secret_key_id, created_at, updated_at, updated_by
  FROM invoice_sync.account
 ORDER BY name;

-- name: account_fingerprint
-- The table's change counter (migration 016: every changing statement bumps it, in its own
-- transaction) and the enabled rows' count (a replica knows its database accounts only as they
-- get work), read together: a reload reads this only once account_generation has moved.
SELECT g.generation::text AS value,
       (SELECT count(*) FROM invoice_sync.account a WHERE a.enabled) AS enabled
  FROM invoice_sync.account_generation g;

-- name: account_generation
-- The table's change counter alone: one row, whatever the accounts, for every poll.
SELECT generation::text FROM invoice_sync.account_generation;

-- name: account_versions
-- The named accounts' ($1) row hashes (the fingerprint's terms) and whether each is enabled: a
-- reload rereads only the accounts its replica knows, start-up looks for the config's names.
SELECT name, enabled, hashtextextended(a::text, 0) AS version
  FROM invoice_sync.account a
 WHERE name = ANY($1::text[]);

-- name: account_key_samples
-- One enabled account's secret per key id: start-up opens these to catch a missing or wrong key
-- (which every account under that key suffers alike) without opening every secret.
SELECT DISTINCT ON (secret_key_id) name, secret, secret_key_id
  FROM invoice_sync.account
 WHERE secret IS NOT NULL AND enabled
 ORDER BY secret_key_id, name;

-- name: account_rows_named
-- The database-held accounts named in $1, whole, secrets as ciphertext, each with its row's
-- hash (as account_versions): those a claim is about to lease rows of for the first time (one
-- query per claim, not per row).
SELECT name, provider, options::text AS options, rate_limit, concurrency, enabled,
       secret, secret_key_id, created_at, updated_at, updated_by,
       hashtextextended(a::text, 0) AS version
  FROM invoice_sync.account a
 WHERE name = ANY($1::text[]);

-- name: account_row
-- One database-held account ($1 name), or none.
SELECT name, provider, options::text AS options, rate_limit, concurrency, enabled,
       secret, secret_key_id, created_at, updated_at, updated_by
  FROM invoice_sync.account
 WHERE name = $1;

-- name: account_row_lock
-- One database-held account ($1 name), locked until the caller's transaction ends: an update
-- merges its flags into what it read, so no other change may land in between.
SELECT name, provider, options::text AS options, rate_limit, concurrency, enabled,
       secret, secret_key_id, created_at, updated_at, updated_by
  FROM invoice_sync.account
 WHERE name = $1
   FOR UPDATE;

-- name: account_insert
-- A new account; nothing is returned when the name is taken (ON CONFLICT keeps the old row).
INSERT INTO invoice_sync.account
       (name, provider, options, rate_limit, concurrency, enabled, secret, secret_key_id,
        updated_by)
VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- name: account_update
-- Replace an account's settings (the CLI read the row FOR UPDATE and merged the change).
UPDATE invoice_sync.account
   SET options = $2::jsonb, rate_limit = $3, concurrency = $4, enabled = $5, secret = $6,
       secret_key_id = $7, updated_by = $8, updated_at = now()
 WHERE name = $1
RETURNING name;

-- name: account_delete
-- Remove an account's row; its outbox rows, results and state stay.
DELETE FROM invoice_sync.account WHERE name = $1 RETURNING name;

-- name: account_unfinished_count
-- Rows of one account ($1) still to send: every outbox row is pending (due or scheduled) or
-- running; finished rows have moved to synced or dead_letter.
SELECT count(*) FROM invoice_sync.outbox WHERE account = $1;

-- name: account_rekey_batch
-- Up to $2 accounts whose secret is not under key $1, locked: SKIP LOCKED lets a concurrent
-- `accounts update` (or a second rotate-key) hold its row while this batch moves on.
SELECT name, secret, secret_key_id
  FROM invoice_sync.account
 WHERE secret IS NOT NULL AND secret_key_id <> $1
 ORDER BY name
 LIMIT $2
   FOR UPDATE SKIP LOCKED;

-- name: account_rekey
-- One account's secret re-encrypted under the new key ($2 ciphertext, $3 key id).
UPDATE invoice_sync.account
   SET secret = $2, secret_key_id = $3, updated_at = now(), updated_by = $4
 WHERE name = $1;

-- name: account_old_key_count
-- Accounts whose secret is still not under key $1 (rows rotate-key found locked by another
-- transaction, or sealed by a replica still on the old key meanwhile).
SELECT count(*) FROM invoice_sync.account WHERE secret IS NOT NULL AND secret_key_id <> $1;
