-- Events: what providers tell Junction (webhooks, polling) and its delivery to the app.
--
-- `events` is the event record of the events API: the provider's raw payload, exactly as
-- received, and the normalized events taken from it (a JSON array). It is written in the
-- same transaction as its notifications, so an event the provider was told we accepted
-- is always on its way.
--
-- `event_deliveries` is the outbox: one row per notification (at most 10 events for
-- polling, 20 for webhooks), with the exact body to send, so every retry sends the same
-- bytes under the same `webhook_id` (the receiver's deduplication key). A worker claims
-- due rows with a lease (`lease_owner`, `lease_until`); a killed worker's lease expires
-- and the row is sent again with the same id. `ordering_key` names the object the
-- notification is about ('' when it holds several): a row is not sent while an earlier
-- undelivered row of its instance has the same key (or '' on either side), so changes
-- to one object arrive in order. `callback` is the receiver's origin, for the circuit
-- breaker and for releasing waiting retries when the receiver recovers.
--
-- `event_attempts` is what each attempt got (the `notifiedData` of the events API).
--
-- `event_pollers` holds one polling instance's watermark (the newest change it has
-- emitted, as JSON per resource), advanced in the transaction that stores the events it
-- produced, and a lease so one replica polls an instance at a time.

create table events (
    id integer primary key autoincrement,
    instance_id bigint not null references instances(id) on delete cascade,
    account_id bigint not null,
    element_key text not null,
    -- `webhook` or `polling`.
    source text not null,
    -- RECEIVED, DISPATCHED, NOTIFIED or FAILED.
    status text not null,
    provider_data text not null,
    events text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index events_instance on events(instance_id, id);
create index events_pruning on events(status, updated_at);

create table event_deliveries (
    id integer primary key autoincrement,
    event_id bigint not null references events(id) on delete cascade,
    instance_id bigint not null,
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
create index event_deliveries_due on event_deliveries(state, next_attempt_at);
create index event_deliveries_queue on event_deliveries(state, id);
create index event_deliveries_order on event_deliveries(instance_id, ordering_key, state, id);
create index event_deliveries_waiting on event_deliveries(instance_id, state, id);
create index event_deliveries_callback on event_deliveries(callback, state);
create index event_deliveries_event on event_deliveries(event_id);

create table event_attempts (
    id integer primary key autoincrement,
    event_id bigint not null references events(id) on delete cascade,
    delivery_id bigint not null,
    attempted_at bigint not null,
    -- Null when no answer came (`error` says why).
    status_code bigint,
    duration_ms bigint not null,
    error text
);
create index event_attempts_event on event_attempts(event_id, id);

create table event_pollers (
    instance_id bigint primary key references instances(id) on delete cascade,
    watermark text not null,
    next_run_at bigint not null,
    failures bigint not null default 0,
    -- Why polling stopped (the instance turned invalid); null while it runs.
    stopped_reason text,
    lease_owner text,
    lease_until bigint,
    updated_at bigint not null
);
