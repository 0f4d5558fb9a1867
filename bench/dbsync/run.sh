#!/usr/bin/env bash
# dbsync benchmark (release build): checksum rows/s against pt-table-checksum on the same
# table in the same run, detection and repair time of a 1062 and a 1032 under write load,
# and the same breakages handled by pt-slave-restart. Needs mariadb-server and
# percona-toolkit installed. The figures are also appended to $BENCH_RESULTS (bench/lib.sh).
#
#   bench/dbsync/run.sh                    # 1,000,000 rows
#   DBSYNC_BENCH_ROWS=100000 bench/dbsync/run.sh
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"
cd "$BENCH_ROOT"
command -v pt-table-checksum >/dev/null || {
    echo "pt-table-checksum missing: apt-get install percona-toolkit" >&2
    exit 1
}
cargo test --release -p hasip-tests --test dbsync_bench -- --ignored --nocapture 2>&1 |
    grep -vE '^\s*(Compiling|Finished|Running|running [0-9]+ test)'
