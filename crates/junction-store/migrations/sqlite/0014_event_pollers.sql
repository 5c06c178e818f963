-- What the events API shows of a polling instance: when it last polled and, while it
-- backs off after a vendor error, what that error was.
alter table event_pollers add column last_polled_at bigint;
alter table event_pollers add column last_error text;
create index event_pollers_due on event_pollers(next_run_at);
