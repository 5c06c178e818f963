-- Roles and account details for the accounts and users API.
-- An organization's administrators manage its accounts and users; everyone else is a
-- plain user. The first user of every existing organization (the one created with it)
-- becomes its administrator.

alter table users add column role text not null default 'user' check (role in ('admin', 'user'));

update users set role = 'admin' where id in (
    select min(u.id) from users u join accounts a on a.id = u.account_id group by a.organization_id
);

-- `external_id` lets an application map its own customer ids to accounts; when set it is
-- unique within the organization.
alter table accounts add column description text;
alter table accounts add column external_id text;
create unique index accounts_external_id on accounts(organization_id, external_id)
    where external_id is not null;
