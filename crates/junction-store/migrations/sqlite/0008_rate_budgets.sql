-- Outbound rate-limit budgets: one row per budget (an instance's or an OAuth app's
-- limit), holding its GCRA theoretical arrival time (`tat`) in microseconds on the
-- database's clock, so that replicas with drifting clocks still share one schedule.
-- `granted_at` is the send time of the row's latest grant (null when it refused), read
-- back by the statement that made it. A row whose `tat` has passed says no more than a
-- missing one, so such rows are pruned; a row is rewritten on every call, so it has no
-- created_at/updated_at.
--
-- Only PostgreSQL uses the table: a SQLite database has a single server, which keeps
-- its budgets in memory. It exists there too so both dialects have one schema.
create table rate_budgets (
    key text primary key,
    tat bigint not null,
    granted_at bigint
);
