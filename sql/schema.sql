-- hasip database schema (MariaDB 10.11, InnoDB, utf8mb4).
--
-- Idempotent: every statement may run again on a database that already has the
-- schema. Run it in the application database (`hasip`) on ONE master; it reaches
-- the other master through replication.
--
-- Statements end with `;` at the end of a line, so a simple line-based splitter
-- (the test harness, dbsync) can run this file without a full SQL parser.

-- Kamailio's `version` table: table name -> schema version of that table.
CREATE TABLE IF NOT EXISTS version (
    table_name VARCHAR(32) NOT NULL,
    table_version INT UNSIGNED DEFAULT 0 NOT NULL,
    CONSTRAINT table_name_idx UNIQUE (table_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Registered contacts (bindings). Column names and meanings follow Kamailio's
-- usrloc `location` table, version 9, so existing operator queries keep working.
-- Differences from Kamailio, all deliberate:
--   * expires and last_modified are DATETIME(6): last-writer-wins between the
--     two masters needs sub-second versions;
--   * ruid is the deterministic binding key computed by the registrar (a hash of
--     AoR + instance + reg-id, or of AoR + contact when there is no instance), so
--     the same binding written on either master is the same row;
--   * (username, domain, expires) serves lookups of live bindings, and (expires)
--     serves the cleanup of expired ones.
-- A removal is a soft delete: expires = last_modified = now(6).
CREATE TABLE IF NOT EXISTS location (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    contact VARCHAR(512) DEFAULT '' NOT NULL,
    received VARCHAR(128) DEFAULT NULL,
    path VARCHAR(512) DEFAULT NULL,
    expires DATETIME(6) DEFAULT '2030-05-28 21:32:15' NOT NULL,
    q FLOAT(10,2) DEFAULT 1.0 NOT NULL,
    callid VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INT DEFAULT 1 NOT NULL,
    last_modified DATETIME(6) DEFAULT '2000-01-01 00:00:01' NOT NULL,
    flags INT DEFAULT 0 NOT NULL,
    cflags INT DEFAULT 0 NOT NULL,
    user_agent VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(64) DEFAULT NULL,
    methods INT DEFAULT NULL,
    instance VARCHAR(255) DEFAULT NULL,
    reg_id INT DEFAULT 0 NOT NULL,
    server_id INT DEFAULT 0 NOT NULL,
    connection_id INT DEFAULT 0 NOT NULL,
    keepalive INT DEFAULT 0 NOT NULL,
    `partition` INT DEFAULT 0 NOT NULL,
    CONSTRAINT ruid_idx UNIQUE (ruid),
    INDEX account_contact_idx (username, domain, contact),
    INDEX account_expires_idx (username, domain, expires),
    INDEX expires_idx (expires),
    -- dbsync's reconcile after a repair reads the rows written in the last minutes.
    INDEX last_modified_idx (last_modified)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- A location table made before dbsync's look-back reconcile gets its index too.
CREATE INDEX IF NOT EXISTS last_modified_idx ON location (last_modified);

-- Credentials. Kamailio's `subscriber` columns (version 7) plus ha1_sha256, the
-- hex SHA-256 of "username:realm:password" for RFC 8760 digest.
CREATE TABLE IF NOT EXISTS subscriber (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    ha1_sha256 CHAR(64) DEFAULT '' NOT NULL,
    CONSTRAINT account_idx UNIQUE (username, domain),
    INDEX username_idx (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- One row per server, rewritten by dbsync every interval (pt-heartbeat style):
-- the age of the peer's row as seen on this server is the replication lag.
CREATE TABLE IF NOT EXISTS dbsync_heartbeat (
    server_id INT UNSIGNED PRIMARY KEY NOT NULL,
    ts DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- What dbsync did to repair replication: one row per detected error and action.
CREATE TABLE IF NOT EXISTS dbsync_repair_log (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    happened_at DATETIME(6) NOT NULL,
    server VARCHAR(64) NOT NULL,
    gtid VARCHAR(255) DEFAULT NULL,
    errno INT UNSIGNED DEFAULT NULL,
    error TEXT DEFAULT NULL,
    tables VARCHAR(512) DEFAULT NULL,
    action VARCHAR(255) NOT NULL,
    INDEX happened_at_idx (happened_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

INSERT INTO version (table_name, table_version) VALUES ('location', 9)
    ON DUPLICATE KEY UPDATE table_version = VALUES(table_version);
INSERT INTO version (table_name, table_version) VALUES ('subscriber', 7)
    ON DUPLICATE KEY UPDATE table_version = VALUES(table_version);
