-- Replication set-up of one server of the hasip master-master pair (MariaDB 10.11):
-- its identity and id spacing, the durable settings, and GTID replication from its
-- peer. Run on EACH server, after replication.sql, as a user with SUPER (root).
--
-- Placeholders, which the caller substitutes (see replication.sql):
--   ${SERVER_ID}       1 on A, 2 on B; also the server's gtid_domain_id and its
--                      auto_increment_offset (A's ids odd, B's even); a number
--   ${PEER_PORT}       the peer's port; a number
--   '${PEER_HOST}'     the peer's address; a string
--   '${REPL_PASSWORD}' hasip_repl's password, as in replication.sql; a string
--
-- The SET GLOBALs take effect at once but not across a restart: put the same values
-- in the server's .cnf too (deploy/mariadb/60-hasip-a.cnf and -b.cnf, which also set
-- log_bin and log_slave_updates, which only a restart can turn on).
--
-- Idempotent: run again, it leaves the same settings and a replica that resumes from
-- its own gtid_slave_pos.

SET SESSION sql_log_bin = 0;
SET GLOBAL server_id = ${SERVER_ID};
SET GLOBAL gtid_domain_id = ${SERVER_ID};
SET GLOBAL auto_increment_increment = 2;
SET GLOBAL auto_increment_offset = ${SERVER_ID};
SET GLOBAL sync_binlog = 1;
SET GLOBAL innodb_flush_log_at_trx_commit = 1;
STOP SLAVE;
SET GLOBAL binlog_format = 'ROW';
CHANGE MASTER TO MASTER_HOST = '${PEER_HOST}', MASTER_PORT = ${PEER_PORT},
  MASTER_USER = 'hasip_repl', MASTER_PASSWORD = '${REPL_PASSWORD}',
  MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1;
START SLAVE;
