-- The hosted Connect page. An OAuth app is an account's client id and secret for one
-- element, so the page never asks an end customer for them; the secret (with any
-- app-wide configuration) is sealed, like instance secrets.
create table oauth_apps (
    id integer primary key autoincrement,
    account_id bigint not null references accounts(id) on delete cascade,
    element_key text not null,
    client_id text not null,
    sealed blob not null,
    created_at bigint not null
);
create unique index oauth_apps_account_element on oauth_apps(account_id, element_key);

-- A Connect session: one end customer's single-use, short-lived way to create one
-- instance. Its token and the OAuth state are kept only as keyed lookup hashes.
-- status: pending, authorizing, completing, completed, denied, failed.
create table connect_sessions (
    id integer primary key autoincrement,
    account_id bigint not null references accounts(id) on delete cascade,
    user_id bigint not null references users(id) on delete cascade,
    token_hash blob not null unique,
    state_hash blob unique,
    elements text not null,
    name text,
    tags text not null,
    return_url text not null,
    base_url text not null,
    -- A client id and sealed secret given with the session instead of a stored OAuth app.
    app_client_id text,
    app_sealed blob,
    -- What the end customer typed (sealed: it may hold their credentials), kept from the
    -- start of an OAuth authorization until its callback creates the instance.
    config_sealed blob,
    -- The PKCE verifier of the authorization in progress, sealed.
    pkce_sealed blob,
    status text not null,
    element_key text,
    instance_id bigint,
    error text,
    expires_at bigint not null,
    created_at bigint not null
);
create index connect_sessions_account on connect_sessions(account_id, id);
