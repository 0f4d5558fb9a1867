//! hasip-tests: the one shared harness of the cross-component tests.
//!
//! - [`bench_results`]: the figures line each benchmark appends for `bench/run-all`.
//! - [`mariadb_pair`]: a throw-away MariaDB master-master pair (GTID replication
//!   both ways, durable settings, schema and users applied): what registrar,
//!   dbsync and whole-stack tests run against.
//! - [`mariadb_server`]: one `mariadbd` process of the pair: free port, data
//!   dir, stop / kill / restart, and query helpers with bound parameters.
//! - [`mariadb_template`]: the initialised data dir servers start from, built
//!   once by `mariadb-install-db` and cached, then copied per server.
//! - [`nat_lab`]: a phone behind NAT on one machine (network namespaces, an nftables
//!   masquerade with a short UDP conntrack timeout): the edge's NAT test and the
//!   whole-stack call to a NATed phone.
//! - [`sipp_log`]: registration times to the microsecond from sipp's message log, for
//!   the stack bench's p99 at a fixed load.
//! - [`sql`]: running the repository's `sql/` files (statement splitting,
//!   placeholder substitution with safe quoting).
//!
//! The tests themselves live in `tests/tests/`.

pub mod bench_results;
pub mod mariadb_pair;
pub mod mariadb_server;
pub mod mariadb_template;
pub mod nat_lab;
pub mod sipp_log;
pub mod sql;

pub use mariadb_pair::MariaDbPair;
pub use mariadb_server::{MariaDbServer, SlaveStatus};
pub use nat_lab::NatLab;
