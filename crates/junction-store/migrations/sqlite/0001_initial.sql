-- Tenancy: an organization has accounts; a user belongs to one account; instances belong
-- to an account. Secrets are never stored: only their keyed hashes (see junction-crypto).
-- Times are epoch milliseconds so SQLite and PostgreSQL store them alike.

create table organizations (
    id integer primary key autoincrement,
    name text not null,
    secret_hash blob not null unique,
    created_at bigint not null
);

create table accounts (
    id integer primary key autoincrement,
    organization_id bigint not null references organizations(id) on delete cascade,
    name text not null,
    created_at bigint not null
);
create index accounts_organization on accounts(organization_id);

create table users (
    id integer primary key autoincrement,
    account_id bigint not null references accounts(id) on delete cascade,
    email text not null,
    first_name text not null,
    last_name text not null,
    secret_hash blob not null unique,
    created_at bigint not null
);
create index users_account on users(account_id);

-- Instance ids are sequential numbers because Cloud Elements clients expect them.
-- `config` holds the non-secret configuration as JSON; `secrets` holds the secret entries
-- (client secret, tokens) as one AES-256-GCM sealed JSON object. The Element token is
-- found by its keyed hash and kept sealed too, because Cloud Elements clients read it back
-- from GET /instances/{id}.
create table instances (
    id integer primary key autoincrement,
    account_id bigint not null references accounts(id) on delete cascade,
    user_id bigint not null references users(id),
    element_id bigint not null,
    element_key text not null,
    name text not null,
    token_hash blob not null unique,
    token_sealed blob not null,
    config text not null,
    secrets blob not null,
    -- Flags are 0/1 integers: sqlx's Any driver cannot carry SQLite booleans.
    valid bigint not null check (valid in (0, 1)),
    disabled bigint not null check (disabled in (0, 1)),
    trace_logging bigint not null check (trace_logging in (0, 1)),
    external_authentication text not null,
    token_expires_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create index instances_account on instances(account_id, id);

create table instance_tags (
    instance_id bigint not null references instances(id) on delete cascade,
    tag text not null,
    primary key (instance_id, tag)
);
create index instance_tags_tag on instance_tags(tag, instance_id);
