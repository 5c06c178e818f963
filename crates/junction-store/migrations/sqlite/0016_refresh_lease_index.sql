-- A start that owns the database releases the refresh leases a killed process left
-- behind (`where refresh_lease_owner is not null`). Without an index that is a scan of
-- every instance, which at a million instances was most of the time to ready. Few rows
-- hold a lease at any moment, so a partial index stays small.
create index instances_refresh_lease on instances (refresh_lease_owner)
    where refresh_lease_owner is not null;
