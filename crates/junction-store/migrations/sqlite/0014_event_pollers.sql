-- What the events API shows of a polling instance: when it last polled and, while it
-- backs off after a vendor error, what that error was.
alter table event_pollers add column last_polled_at bigint;
alter table event_pollers add column last_error text;
create index event_pollers_due on event_pollers(next_run_at);

-- The changes a poller emitted at or after its watermark (`changed_at`, epoch ms), one
-- row per record: `change` is what the record's change looked like (its updated date as
-- the vendor wrote it, or a digest of it), so a poll run again after a crash, or the next
-- poll reading the same window edge, recognises what it already emitted. Rows are
-- written in the transaction that stores the events, and older rows go once a complete
-- poll has moved the watermark past them.
create table event_poller_seen (
    instance_id bigint not null references instances(id) on delete cascade,
    resource text not null,
    object_id text not null,
    change text not null,
    changed_at bigint not null,
    primary key (instance_id, resource, object_id)
);
create index event_poller_seen_age on event_poller_seen(instance_id, changed_at);
