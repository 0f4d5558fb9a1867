# shellcheck shell=bash
# What the bench scripts share. Sourced; sets BENCH_ROOT (the repository) and exports
# BENCH_RESULTS, the machine-readable figures file every benchmark appends to
# (bench/README.md describes its lines). bench/run-all points it at a fresh file per
# run; a script run alone appends to target/bench-results.tsv.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_RESULTS=${BENCH_RESULTS:-${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/bench-results.tsv}
mkdir -p "$(dirname "$BENCH_RESULTS")"

# bench_need TOOL... : fails, naming the Debian packages, when a tool is missing.
bench_need() {
  local tool
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
      echo "missing $tool: apt-get install mariadb-server sip-tester kamailio kamailio-mysql-modules percona-toolkit" >&2
      exit 1
    fi
  done
}

# bench_figure BENCH METRIC SYSTEM VALUE UNIT higher|lower
bench_figure() {
  printf 'figure\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_RESULTS"
}

# bench_target BENCH METRIC RULE   (">=2x", ">1x", "hasip=0")
bench_target() {
  printf 'target\t%s\t%s\t%s\n' "$@" >>"$BENCH_RESULTS"
}

# --- scripts/stack's running stack (bench/stack/after-load, bench/stack/cpu) -----------

# stack_subscribers USERS DB_PORT WORK: adds subscribers u0 .. u<USERS-1> (passwords
# pw0 ..) to the stack's database on MariaDB A at DB_PORT (they replicate to B), and
# writes WORK/users.csv for sipp. The names, domain and passwords are built by the server
# from the sequence; the only value from here is the (checked) count in its table name.
stack_subscribers() {
  local users=$1 db_port=$2 work=$3 i
  case "$users$db_port" in *[!0-9]*) echo "USERS and DB_A_PORT must be numbers" >&2; exit 2 ;; esac
  [ "$users" -ge 1 ] || { echo "USERS must be at least 1" >&2; exit 2; }
  mariadb -h 127.0.0.1 -P "$db_port" -u root hasip -e "
INSERT IGNORE INTO subscriber (username, domain, password, ha1, ha1b, ha1_sha256)
SELECT CONCAT('u', seq), 'example.com', CONCAT('pw', seq),
  MD5(CONCAT_WS(':', CONCAT('u', seq), 'example.com', CONCAT('pw', seq))),
  MD5(CONCAT_WS(':', CONCAT('u', seq, '@example.com'), 'example.com', CONCAT('pw', seq))),
  SHA2(CONCAT_WS(':', CONCAT('u', seq), 'example.com', CONCAT('pw', seq)), 256)
FROM seq_0_to_$((users - 1))" ||
    { echo "adding subscribers failed: is scripts/stack up running?" >&2; exit 1; }
  {
    echo SEQUENTIAL
    for ((i = 0; i < users; i++)); do
      echo "u$i;example.com;pw$i;[authentication username=u$i password=pw$i]"
    done
  } >"$work/users.csv"
}

# stack_sipp WORK EDGE CALLS LIMIT RATE [ARGS...]: CALLS registrations of WORK/users.csv
# through EDGE, LIMIT in flight at RATE/s, from one sipp port; sipp's files stay in WORK.
stack_sipp() {
  local work=$1 edge=$2 calls=$3 limit=$4 rate=$5
  shift 5
  (cd "$work" && rm -f auth_register_* &&
    timeout 300 sipp "$edge" -sf "$BENCH_ROOT/sipp/registrar/auth_register.xml" \
      -inf users.csv -t u1 -i 127.0.0.1 -p 6111 -m "$calls" -r "$rate" -l "$limit" -nostdin \
      -timeout 290s -max_recv_loops 10000 -buff_size 4194304 -trace_stat -fd 1 "$@" \
      >/dev/null 2>&1) || true
}
