-- The available_at clamp (007) asks "is the inserting role a producer?" for every row inserted
-- in the past, and a bulk load inserts every row there (available_at defaults to the load's
-- now(), earlier than the insert's clock_timestamp()). It asked by joining pg_roles to itself,
-- which cost a worker's `invoice-sync enqueue` about as much per row as the rest of the INSERT.
-- Now the membership test is one call on the role cache, and pg_roles is read only for a role
-- that passes it (a producer, or a superuser, who passes every membership test and keeps the
-- past). Who is clamped is unchanged: members of invoice_sync_producer that are not superusers;
-- nobody in a database without the group.
CREATE OR REPLACE FUNCTION invoice_sync.outbox_clamp_available_at() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    producers constant regrole := pg_catalog.to_regrole('invoice_sync_producer');
BEGIN
    IF NEW.available_at < clock_timestamp() AND producers IS NOT NULL
       AND pg_catalog.pg_has_role(current_user, producers, 'MEMBER') THEN
        IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
            NEW.available_at := clock_timestamp();
        END IF;
    END IF;
    RETURN NEW;
END $$;
