#!/usr/bin/env bash
# REGISTER throughput of the hasip registrar against Kamailio 5.6 (usrloc db_mode 3),
# side by side on one durable MariaDB master pair, driven by sipp with digest auth.
#
# Needs: mariadb-server, sip-tester (sipp), kamailio and kamailio-mysql-modules:
#   apt-get install mariadb-server sip-tester kamailio kamailio-mysql-modules
# Builds the registrar with the bench profile (the release profile plus line
# tables), then runs registrar/benches/sipp_register.rs, which starts the pair,
# the registrar binary and Kamailio, runs sipp at each and prints the figures
# (also appended to $BENCH_RESULTS, see bench/lib.sh).
#
# Knobs (environment): BENCH_USERS (10000), BENCH_ROUNDS (3 per pass), BENCH_PASSES (2), BENCH_CONCURRENCY
# (400), KAMAILIO_CHILDREN (8). Loopback only; each run is bounded by sipp's
# -timeout and takes a few minutes.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"
cd "$BENCH_ROOT"
bench_need sipp kamailio mariadbd
exec cargo bench -p hasip-registrar --bench sipp_register
