-- Trace logging: while `trace_logging_until` (epoch ms) lies ahead, every call Junction
-- makes to the instance's provider is kept in `instance_trace_logs`: method, provider URL,
-- status, duration, headers and the first 4 KiB of each body, all redacted before they are
-- written. Only the newest entries of an instance are kept (see junction-store trace.rs),
-- and they go with the instance.
-- Instances switched on before this migration have no end and count as off: nothing was
-- recorded for them, and switching on again starts a period.

alter table instances add column trace_logging_until bigint;

create table instance_trace_logs (
    id integer primary key autoincrement,
    instance_id bigint not null references instances(id) on delete cascade,
    created_at bigint not null,
    method text not null,
    url text not null,
    -- Null when no answer arrived (`error` says why).
    status bigint,
    -- Until the provider's status and headers arrived.
    duration_ms bigint not null,
    -- JSON objects of header name to value.
    request_headers text not null,
    response_headers text,
    -- What passed, redacted and cut at 4 KiB; the sizes count every byte that passed.
    request_body text,
    request_body_bytes bigint not null,
    response_body text,
    response_body_bytes bigint not null,
    error text
);
create index instance_trace_logs_instance on instance_trace_logs(instance_id, id);
