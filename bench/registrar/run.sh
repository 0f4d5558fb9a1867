#!/usr/bin/env bash
# REGISTER throughput of the hasip registrar against Kamailio 5.6 (usrloc db_mode 3),
# side by side on one durable MariaDB master pair, driven by sipp with digest auth.
#
# Needs: mariadb-server, sip-tester (sipp), kamailio and kamailio-mysql-modules:
#   apt-get install mariadb-server sip-tester kamailio kamailio-mysql-modules
# Builds the registrar with the bench profile (the release profile plus line
# tables), then runs registrar/benches/sipp_register.rs, which starts the pair,
# the registrar binary and Kamailio, runs sipp at each and prints the figures.
#
# Knobs (environment): BENCH_USERS (10000), BENCH_ROUNDS (3 per pass), BENCH_PASSES (2), BENCH_CONCURRENCY
# (400), KAMAILIO_CHILDREN (8). Loopback only; each run is bounded by sipp's
# -timeout and takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in sipp kamailio mariadbd; do
    if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
        echo "missing $tool: apt-get install mariadb-server sip-tester kamailio kamailio-mysql-modules" >&2
        exit 1
    fi
done

exec cargo bench -p hasip-registrar --bench sipp_register
