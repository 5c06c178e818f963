-- Whether an instance's stored configuration has events on: `event.notification.enabled`
-- present with any value but "false". Start-up reconciliation pages through these
-- instances; matching the configuration text instead read every instance. Every write
-- of `config` writes this flag in the same statement.
alter table instances add column events_on bigint not null default 0
    check (events_on in (0, 1));

-- The configuration is serde_json's compact map, so the pair is spelled exactly this
-- way; quotes inside another value would be escaped and never match.
update instances set events_on = 1
    where config like '%event.notification.enabled%'
    and config not like '%"event.notification.enabled":"false"%';

-- Few instances poll, so a partial index stays small.
create index instances_events_on on instances (id) where events_on = 1;
