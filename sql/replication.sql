-- Users for the hasip master-master pair (MariaDB 10.11).
--
-- Run on EACH server, before replication is set up, with binary logging off for
-- the session (the first statement), so each server creates its own users and
-- nothing of this set-up travels through replication.
--
-- Passwords are placeholders: '${REPL_PASSWORD}', '${DBSYNC_PASSWORD}' and
-- '${APP_PASSWORD}' (quotes included). SQL files cannot take parameters, so the
-- caller substitutes them: by hand (`envsubst < replication.sql`, with values that
-- contain no quote or backslash), or, as the test harness and dbsync do, by
-- replacing each quoted placeholder with a properly escaped SQL string literal.
--
-- Hosts are '%' so the file works anywhere; in production narrow them to the
-- peer master (hasip_repl), the dbsync hosts and the registrar hosts.
--
-- Statements end with `;` at the end of a line (see schema.sql).

SET SESSION sql_log_bin = 0;

-- The peer master's replica threads log in as this user.
CREATE USER IF NOT EXISTS 'hasip_repl'@'%' IDENTIFIED BY '${REPL_PASSWORD}';
GRANT REPLICATION SLAVE ON *.* TO 'hasip_repl'@'%';

-- dbsync: reads replication state (SLAVE MONITOR, BINLOG MONITOR), stops,
-- starts and skips on the replica (REPLICATION SLAVE ADMIN; it skips by setting
-- gtid_slave_pos, because sql_slave_skip_counter needs SUPER), and writes its
-- repairs with sql_log_bin = 0 so they stay local (BINLOG ADMIN). Its data
-- rights cover only the application database: heartbeat, repair log, and the
-- reconciliation of location rows.
CREATE USER IF NOT EXISTS 'hasip_dbsync'@'%' IDENTIFIED BY '${DBSYNC_PASSWORD}';
GRANT SLAVE MONITOR, BINLOG MONITOR, REPLICATION SLAVE ADMIN, BINLOG ADMIN ON *.* TO 'hasip_dbsync'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON hasip.* TO 'hasip_dbsync'@'%';

-- The registrars: row access to the application database and nothing else.
-- (GET_LOCK, used to elect the cleanup task, needs no privilege.)
CREATE USER IF NOT EXISTS 'hasip'@'%' IDENTIFIED BY '${APP_PASSWORD}';
GRANT SELECT, INSERT, UPDATE, DELETE ON hasip.* TO 'hasip'@'%';
