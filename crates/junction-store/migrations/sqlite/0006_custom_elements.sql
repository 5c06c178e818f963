-- Custom elements made through the Element Builder (`POST /elements`). Each belongs to
-- the organization that made it and is seen by no other. `definition` is the element
-- JSON, the same model as the catalog's files; the row's `id` and `key` are the
-- element's own, so they are kept out of the JSON's say.
-- Ids start at 100000 (`CUSTOM_ELEMENT_IDS_START`): every built-in id lies below, so an
-- instance's `element_id` alone says which kind of element it is, and the two never clash.

create table custom_elements (
    id integer primary key autoincrement,
    organization_id bigint not null references organizations(id) on delete cascade,
    key text not null,
    definition text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create unique index custom_elements_key on custom_elements(organization_id, key);
insert into sqlite_sequence (name, seq) values ('custom_elements', 99999);
create index instances_element on instances(element_id);
