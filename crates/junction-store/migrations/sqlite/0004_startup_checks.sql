-- What a start checks before serving.
--
-- `key_checks`: a fixed text sealed under each encryption key that became primary here.
-- A start opens the row of every configured key id, so a wrong JUNCTION_ENCRYPTION_KEY
-- (or a lost key file replaced by a new one) stops Junction with a message instead of
-- turning every stored secret into a misleading 401.
create table key_checks (
    key_id bigint primary key,
    sealed blob not null,
    created_at bigint not null
);

-- `first_start`: the organization created on an empty database with generated secrets,
-- until those secrets have been printed. A row left with `revealed_at` null means the
-- process stopped before showing them: nobody can hold them, so the next start replaces
-- them and prints the new ones.
create table first_start (
    organization_id bigint primary key references organizations(id) on delete cascade,
    user_id bigint not null references users(id) on delete cascade,
    created_at bigint not null,
    revealed_at bigint
);
