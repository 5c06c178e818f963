-- Connect sessions are deleted some time after they expire, oldest first; this index
-- lets each batch find them without reading the whole table.
create index connect_sessions_expires on connect_sessions(expires_at);
