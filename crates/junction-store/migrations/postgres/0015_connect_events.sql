-- A Connect session can tell the app how it ended: the session carries the app's
-- callback and its signing key (sealed), and the outbox carries notifications about a
-- session as well as about an instance. An event is about exactly one of the two; a
-- session's event goes with the session when it is purged.
alter table connect_sessions add column callback_url text;
alter table connect_sessions add column callback_key_sealed bytea;

alter table events alter column instance_id drop not null;
alter table events add column connect_session_id bigint
    references connect_sessions(id) on delete cascade;
alter table events add constraint events_one_subject
    check ((instance_id is null) <> (connect_session_id is null));
create index events_connect_session on events(connect_session_id);

alter table event_deliveries alter column instance_id drop not null;
alter table event_deliveries add column connect_session_id bigint;
