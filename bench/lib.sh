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
