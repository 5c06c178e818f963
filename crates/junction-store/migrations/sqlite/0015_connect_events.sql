-- A Connect session can tell the app how it ended: the session carries the app's
-- callback and its signing key (sealed), and the outbox carries notifications about a
-- session as well as about an instance. An event is about exactly one of the two; a
-- session's event goes with the session when it is purged.
--
-- SQLite cannot drop a NOT NULL constraint, so the three event tables are rebuilt. The
-- new tables are created under other names and point at each other; the old ones are
-- dropped children first (so dropping `events` cascades into nothing), and the renames
-- carry the references over to the final names. Identity sequences are kept, so no id
-- (an `eventId` an app may have seen) is handed out twice.
alter table connect_sessions add column callback_url text;
alter table connect_sessions add column callback_key_sealed blob;

create table events_rebuilt (
    id integer primary key autoincrement,
    instance_id bigint references instances(id) on delete cascade,
    connect_session_id bigint references connect_sessions(id) on delete cascade,
    account_id bigint not null,
    element_key text not null,
    -- `webhook`, `polling` or `connect`.
    source text not null,
    -- RECEIVED, DISPATCHED, NOTIFIED or FAILED.
    status text not null,
    provider_data text not null,
    events text not null,
    created_at bigint not null,
    updated_at bigint not null,
    check ((instance_id is null) <> (connect_session_id is null))
);
insert into events_rebuilt (id, instance_id, account_id, element_key, source, status,
    provider_data, events, created_at, updated_at)
    select id, instance_id, account_id, element_key, source, status, provider_data, events,
    created_at, updated_at from events;

create table event_deliveries_rebuilt (
    id integer primary key autoincrement,
    event_id bigint not null references events_rebuilt(id) on delete cascade,
    instance_id bigint,
    connect_session_id bigint,
    account_id bigint not null,
    webhook_id text not null unique,
    body text not null,
    ordering_key text not null,
    callback text not null,
    -- pending, delivered or failed.
    state text not null,
    attempts bigint not null default 0,
    next_attempt_at bigint not null,
    lease_owner text,
    lease_until bigint,
    created_at bigint not null,
    updated_at bigint not null
);
insert into event_deliveries_rebuilt (id, event_id, instance_id, account_id, webhook_id, body,
    ordering_key, callback, state, attempts, next_attempt_at, lease_owner, lease_until,
    created_at, updated_at)
    select id, event_id, instance_id, account_id, webhook_id, body, ordering_key, callback,
    state, attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at
    from event_deliveries;

create table event_attempts_rebuilt (
    id integer primary key autoincrement,
    event_id bigint not null references events_rebuilt(id) on delete cascade,
    delivery_id bigint not null,
    attempted_at bigint not null,
    -- Null when no answer came (`error` says why).
    status_code bigint,
    duration_ms bigint not null,
    error text
);
insert into event_attempts_rebuilt (id, event_id, delivery_id, attempted_at, status_code,
    duration_ms, error)
    select id, event_id, delivery_id, attempted_at, status_code, duration_ms, error
    from event_attempts;

delete from sqlite_sequence where name = 'events_rebuilt';
insert into sqlite_sequence (name, seq)
    select 'events_rebuilt', seq from sqlite_sequence where name = 'events';
delete from sqlite_sequence where name = 'event_deliveries_rebuilt';
insert into sqlite_sequence (name, seq)
    select 'event_deliveries_rebuilt', seq from sqlite_sequence where name = 'event_deliveries';
delete from sqlite_sequence where name = 'event_attempts_rebuilt';
insert into sqlite_sequence (name, seq)
    select 'event_attempts_rebuilt', seq from sqlite_sequence where name = 'event_attempts';

drop table event_attempts;
drop table event_deliveries;
drop table events;
alter table events_rebuilt rename to events;
alter table event_deliveries_rebuilt rename to event_deliveries;
alter table event_attempts_rebuilt rename to event_attempts;

create index events_instance on events(instance_id, id);
create index events_pruning on events(status, updated_at);
create index events_connect_session on events(connect_session_id);
create index event_deliveries_due on event_deliveries(state, next_attempt_at);
create index event_deliveries_queue on event_deliveries(state, id);
create index event_deliveries_order on event_deliveries(instance_id, ordering_key, state, id);
create index event_deliveries_waiting on event_deliveries(instance_id, state, id);
create index event_deliveries_callback on event_deliveries(callback, state);
create index event_deliveries_event on event_deliveries(event_id);
create index event_attempts_event on event_attempts(event_id, id);
