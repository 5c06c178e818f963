-- Keeping provider credentials alive.
-- `invalid_reason` says why an instance stopped being valid (the provider's answer to a
-- refresh that failed for good); it is cleared when the instance is re-provisioned.
-- The refresh lease makes one replica at a time spend an instance's refresh token: a
-- replica claims it with a compare-and-set on `refresh_lease_until`, writes the new
-- tokens only while it still owns it, and a crashed replica's lease frees itself when it
-- expires. `refresh_retry_at` and `refresh_failures` back off after transient failures.

alter table instances add column invalid_reason text;
alter table instances add column refresh_lease_owner text;
alter table instances add column refresh_lease_until bigint;
alter table instances add column refresh_retry_at bigint;
alter table instances add column refresh_failures bigint not null default 0;

-- The background sweep looks for valid instances whose token expires soon.
create index instances_token_expiry on instances(token_expires_at) where valid = 1;
