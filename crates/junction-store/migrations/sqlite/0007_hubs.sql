-- Hubs an organization creates with POST /hubs, beside the built-in ones of the catalog.
-- Keys are unique in the organization (and the service keeps them off the built-in keys).
-- Ids start at 100000 so they never meet a built-in hub's id.

create table hubs (
    id integer primary key autoincrement,
    organization_id bigint not null references organizations(id) on delete cascade,
    key text not null,
    name text not null,
    description text not null,
    video_link text,
    -- 0/1: sqlx's Any driver cannot carry SQLite booleans.
    active bigint not null check (active in (0, 1)),
    created_at bigint not null
);
create unique index hubs_organization_key on hubs(organization_id, key);

-- AUTOINCREMENT continues after the highest sequence value recorded for the table.
insert into sqlite_sequence (name, seq) values ('hubs', 99999);
