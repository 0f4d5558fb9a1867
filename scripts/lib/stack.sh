# shellcheck shell=bash
# The functions behind scripts/stack. Sourced with ROOT and RUN set.

# --- the fixed loopback layout ------------------------------------------------------
DOMAIN=example.com
DB_A_PORT=3316
DB_B_PORT=3317
EDGE_SIP=127.0.0.1:5060
EDGE_INTERNAL=127.0.0.1:5070
EDGE_HTTP=127.0.0.1:9100
REG1_IP=127.0.0.2
REG2_IP=127.0.0.3
REG_SIP_PORT=5060
REG_HTTP_PORT=9100
DBSYNC_HTTP=127.0.0.1:9464

# Demo secrets: printed on screen and kept in run/etc, never meant for production.
APP_PASSWORD=hasip-app-demo
REPL_PASSWORD=hasip-repl-demo
DBSYNC_PASSWORD=hasip-dbsync-demo
NONCE_SECRET=demo-nonce-secret-0123456789abcdef
FLOW_SECRET=demo-flow-token-secret-0123456789abcdef
# user:password pairs of the demo subscribers.
DEMO_USERS="alice:alice-pw bob:bob-pw carol:carol-pw dave:dave-pw"

# Start order; `down` stops in reverse.
PARTS="mariadb-a mariadb-b dbsync-watch registrar-1 registrar-2 edge"

ETC=$RUN/etc
LOGS=$RUN/logs
PIDS=$RUN/pids

say() { printf '%s\n' "$*"; }
die() {
  printf 'scripts/stack: %s\n' "$*" >&2
  exit 1
}

# --- processes ------------------------------------------------------------------------

# The pid recorded for PART, if that process still runs the program recorded with it
# (a recycled pid is not ours). A program rebuilt since it started shows as
# "PATH (deleted)" and is still ours.
live_pid() {
  local part=$1 pid exe running
  [ -f "$PIDS/$part.pid" ] || return 1
  read -r pid exe <"$PIDS/$part.pid" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  running=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$running" = "$exe" ] || [ "$running" = "$exe (deleted)" ] || return 1
  printf '%s\n' "$pid"
}

# start PART LOGFILE PROGRAM ARGS...: runs the program detached, records its pid.
start() {
  local part=$1 log=$2
  shift 2
  local exe
  exe=$(readlink -f "$1")
  # NO_COLOR: plain log files, without terminal colour codes.
  NO_COLOR=1 setsid "$@" </dev/null >>"$log" 2>&1 &
  local pid=$!
  printf '%s %s\n' "$pid" "$exe" >"$PIDS/$part.pid"
}

# stop PART: SIGTERM, then SIGKILL after a bounded wait.
stop() {
  local part=$1 pid waited=0 limit=${2:-30}
  if ! pid=$(live_pid "$part"); then
    rm -f "$PIDS/$part.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((limit * 10)) ]; then
      say "  $part (pid $pid) did not stop within ${limit}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  say "  stopped $part (pid $pid)"
  rm -f "$PIDS/$part.pid"
}

# --- HTTP without curl ----------------------------------------------------------------

# http_get HOST:PORT PATH: prints the status code and body; fails when unreachable.
http_get() {
  local host=${1%:*} port=${1##*:} path=$2 reply
  reply=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
    cat <&3' "$host" "$port" "$path" 2>/dev/null) || return 1
  local code
  code=$(printf '%s' "$reply" | head -n1 | awk '{print $2}')
  [ -n "$code" ] || return 1
  printf '%s %s\n' "$code" "$(printf '%s' "$reply" | tr -d '\r' | sed '1,/^$/d' | tr '\n' ' ')"
}

# wait_http PART HOST:PORT: waits (bounded) until /health answers.
wait_http() {
  local part=$1 addr=$2 i
  for i in $(seq 1 100); do
    if http_get "$addr" /health >/dev/null; then
      return 0
    fi
    live_pid "$part" >/dev/null || die "$part exited during start-up; see $LOGS/$part.log:
$(grep -av '^ ' "$LOGS/$part.log" 2>/dev/null | tail -n 8)"
    sleep 0.2
  done
  die "$part does not answer on http://$addr/health after 20s; see $LOGS/$part.log"
}

port_busy() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# udp_owner IP PORT: who holds the UDP port (needs ss from iproute2; silent without it).
udp_owner() {
  command -v ss >/dev/null 2>&1 || return 1
  local line
  line=$(ss -Hlunp "src $1:$2" 2>/dev/null | head -n1)
  [ -n "$line" ] || line=$(ss -Hlunp "src 0.0.0.0:$2" 2>/dev/null | head -n1)
  [ -n "$line" ] || return 1
  printf '%s\n' "$line" | grep -o 'users:.*' || printf 'another process\n'
}

# --- tools ----------------------------------------------------------------------------

find_tool() {
  local name=$1 dir
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return 0
  fi
  for dir in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
    [ -x "$dir/$name" ] && {
      printf '%s\n' "$dir/$name"
      return 0
    }
  done
  return 1
}

need_mariadb() {
  if find_tool mariadbd >/dev/null && find_tool mariadb-install-db >/dev/null &&
    find_tool mariadb >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" -eq 0 ]; then
    say "MariaDB is missing: installing it through apt (scripts/install-deps)"
    "$ROOT/scripts/install-deps" || die "scripts/install-deps failed"
  else
    die "the MariaDB server binaries are missing (mariadbd, mariadb-install-db, mariadb).
Install them with:   sudo apt-get install -y mariadb-server mariadb-client
(or run scripts/stack up as root, which installs them through apt).
The stack starts its own servers on 127.0.0.1:$DB_A_PORT and :$DB_B_PORT; a system
MariaDB on 3306 is neither used nor disturbed."
  fi
  find_tool mariadbd >/dev/null || die "mariadbd still not found after installing"
}

# Where the release binaries are: recorded by `up`, so `status` finds the same ones
# whatever CARGO_TARGET_DIR says later.
bin_dir() {
  if [ -f "$RUN/bin-dir" ]; then
    cat "$RUN/bin-dir"
  else
    printf '%s/release\n' "${CARGO_TARGET_DIR:-$ROOT/target}"
  fi
}

build() {
  command -v cargo >/dev/null 2>&1 ||
    die "cargo is missing: install Rust from https://rustup.rs (stable toolchain), then run again"
  say "building the release binaries (edge, registrar, dbsync); the first build takes minutes"
  (cd "$ROOT" && cargo build --release -p hasip-edge -p hasip-registrar -p hasip-dbsync) ||
    die "cargo build failed"
}

# --- MariaDB --------------------------------------------------------------------------

sql() { # sql PORT [ARGS...] < statements
  local port=$1
  shift
  mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$port" -u root "$@"
}

db_port() { [ "$1" = a ] && echo "$DB_A_PORT" || echo "$DB_B_PORT"; }
db_id() { [ "$1" = a ] && echo 1 || echo 2; }

start_mariadb() {
  local side=$1 port id dir mariadbd user_arg=()
  port=$(db_port "$side")
  id=$(db_id "$side")
  dir=$RUN/db/$side
  mariadbd=$(find_tool mariadbd)
  if live_pid "mariadb-$side" >/dev/null; then
    return 0
  fi
  port_busy 127.0.0.1 "$port" &&
    die "127.0.0.1:$port is taken by another process; MariaDB $side of the stack needs it"
  [ "$(id -u)" -eq 0 ] && user_arg=(--user=root)
  mkdir -p "$dir/tmp"
  if [ ! -d "$dir/data/mysql" ]; then
    say "initialising MariaDB $side in $dir/data"
    "$(find_tool mariadb-install-db)" --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" \
      "${user_arg[@]}" --auth-root-authentication-method=normal --skip-test-db \
      --skip-name-resolve >"$LOGS/mariadb-$side-install.log" 2>&1 ||
      die "mariadb-install-db failed; see $LOGS/mariadb-$side-install.log"
  fi
  # The durable master-master settings (sql/README.md); A odd ids, B even.
  start "mariadb-$side" "$LOGS/mariadb-$side.console.log" "$mariadbd" --no-defaults \
    --datadir="$dir/data" --tmpdir="$dir/tmp" "${user_arg[@]}" \
    --log-basename=mariadb --log-error="$LOGS/mariadb-$side.log" \
    --socket="$dir/mariadbd.sock" --pid-file="$dir/mariadbd.pid" \
    --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
    --server-id="$id" --gtid-domain-id="$id" --log-bin --binlog-format=ROW \
    --log-slave-updates=1 --sync-binlog=1 --innodb-flush-log-at-trx-commit=1 \
    --auto-increment-increment=2 --auto-increment-offset="$id" \
    --relay-log-recovery=1 --slave-net-timeout=10 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --default-time-zone=+00:00 --innodb-buffer-pool-size=64M
  local i
  for i in $(seq 1 300); do
    if sql "$port" -e 'SELECT 1' >/dev/null 2>&1; then
      say "MariaDB $side up on 127.0.0.1:$port (server_id $id)"
      return 0
    fi
    live_pid "mariadb-$side" >/dev/null || die "MariaDB $side exited during start-up:
$(tail -n 20 "$LOGS/mariadb-$side.log" 2>/dev/null)"
    sleep 0.2
  done
  die "MariaDB $side does not accept connections after 60s; see $LOGS/mariadb-$side.log"
}

# The users of sql/replication.sql, with the demo passwords filled in (they hold no
# quote or backslash, so plain substitution is safe).
create_users() {
  local side=$1
  sed -e "s/'\${REPL_PASSWORD}'/'$REPL_PASSWORD'/g" \
    -e "s/'\${DBSYNC_PASSWORD}'/'$DBSYNC_PASSWORD'/g" \
    -e "s/'\${APP_PASSWORD}'/'$APP_PASSWORD'/g" "$ROOT/sql/replication.sql" |
    sql "$(db_port "$side")" || die "creating the users on MariaDB $side failed"
}

# The demo subscribers, on A (they replicate). HA1 columns computed by the server:
# ha1 = MD5(user:realm:pw), ha1b = MD5(user@domain:realm:pw), ha1_sha256 = SHA-256.
# Values go in as user variables bound to a prepared statement.
create_subscribers() {
  local pair user pw
  {
    echo "PREPARE add_subscriber FROM 'INSERT INTO subscriber (username, domain, password, ha1, ha1b, ha1_sha256) VALUES (?, ?, ?, MD5(CONCAT_WS(\":\", ?, ?, ?)), MD5(CONCAT_WS(\":\", CONCAT(?, \"@\", ?), ?, ?)), SHA2(CONCAT_WS(\":\", ?, ?, ?), 256)) ON DUPLICATE KEY UPDATE password = VALUES(password), ha1 = VALUES(ha1), ha1b = VALUES(ha1b), ha1_sha256 = VALUES(ha1_sha256)';"
    for pair in $DEMO_USERS; do
      user=${pair%%:*}
      pw=${pair#*:}
      echo "SET @u = '$user', @d = '$DOMAIN', @p = '$pw';"
      echo "EXECUTE add_subscriber USING @u, @d, @p, @u, @d, @p, @u, @d, @d, @p, @u, @d, @p;"
    done
    echo "DEALLOCATE PREPARE add_subscriber;"
  } | sql "$DB_A_PORT" hasip || die "creating the demo subscribers failed"
}

# --- configs --------------------------------------------------------------------------

write_configs() {
  mkdir -p "$ETC"
  cat >"$ETC/dbsync.toml" <<EOF
# Written by scripts/stack up: dbsync for the loopback pair.
database = "hasip"
priority = "a"
repair_errors = [1062, 1032]
repair_tables = ["location"]
poll_interval_ms = 1000
reconcile_interval_s = 60

[a]
name = "a"
host = "127.0.0.1"
port = $DB_A_PORT
user = "hasip_dbsync"
password = "$DBSYNC_PASSWORD"

[b]
name = "b"
host = "127.0.0.1"
port = $DB_B_PORT
user = "hasip_dbsync"
password = "$DBSYNC_PASSWORD"

[[tables]]
name = "location"
key = "ruid"
version = "last_modified"
expires = "expires"

[setup]
replication_user = "hasip_repl"
replication_password = "$REPL_PASSWORD"
account_host = "%"
schema = "$ROOT/sql/schema.sql"

[log]
level = "info"
format = "text"

[http]
listen = "$DBSYNC_HTTP"
EOF
  local n ip
  for n in 1 2; do
    ip=$([ "$n" = 1 ] && echo "$REG1_IP" || echo "$REG2_IP")
    cat >"$ETC/registrar-$n.toml" <<EOF
# Written by scripts/stack up: registrar $n, private address $ip.
[log]
level = "info"
format = "text"

[http]
listen = "$ip:$REG_HTTP_PORT"

[sip]
listen = ["udp:$ip:$REG_SIP_PORT", "tcp:$ip:$REG_SIP_PORT"]
domains = ["$DOMAIN"]
trusted = ["127.0.0.0/8"]
untrusted = "drop"

[auth]
enabled = true
nonce_secret = "$NONCE_SECRET"
# MD5 first: sipp 3.6 answers only the first challenge and knows no SHA-256.
algorithms = ["MD5", "SHA-256"]

[expires]
min = 60
max = 7200
default = 3600
max_contacts = 16

[store]
masters = [
    "mysql://hasip:$APP_PASSWORD@127.0.0.1:$DB_A_PORT/hasip",
    "mysql://hasip:$APP_PASSWORD@127.0.0.1:$DB_B_PORT/hasip",
]
timeout_ms = 1000
shards = 2
pool_size = 8

[cleanup]
interval_secs = 60
grace_secs = 3600
EOF
  done
  cat >"$ETC/edge.toml" <<EOF
# Written by scripts/stack up: the edge on $EDGE_SIP.
[log]
level = "info"
format = "text"

[http]
listen = "$EDGE_HTTP"

[sip]
listen = ["udp:$EDGE_SIP", "tcp:$EDGE_SIP"]
internal = "udp:$EDGE_INTERNAL"

[flow_token]
secret = "$FLOW_SECRET"

[registrars]
addrs = ["$REG1_IP:$REG_SIP_PORT", "$REG2_IP:$REG_SIP_PORT"]
failover_timeout_ms = 1000

[health]
probe_interval_ms = 1000
probe_timeout_ms = 500

[protection]
# Off: a load test (sipp) sends everything from one address.
max_requests = 0
EOF
  # The sipp scenario: REGISTER, 401, REGISTER with -au/-ap credentials, 200.
  cat >"$ETC/register.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="hasip register with digest (-s user -au user -ap password)">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[service]@[domain]>;tag=[pid]R[call_number]
      To: <sip:[service]@[domain]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      Expires: 3600
      User-Agent: sipp
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true" />
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[service]@[domain]>;tag=[pid]R[call_number]
      To: <sip:[service]@[domain]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      [authentication]
      Expires: 3600
      User-Agent: sipp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" />
</scenario>
EOF
}

# --- up / down / status ---------------------------------------------------------------

any_running() {
  local part
  for part in $PARTS; do
    live_pid "$part" >/dev/null && return 0
  done
  return 1
}

stack_up() {
  mkdir -p "$LOGS" "$PIDS"
  if any_running; then
    local all=1 part
    for part in $PARTS; do
      live_pid "$part" >/dev/null || all=0
    done
    if [ "$all" = 1 ]; then
      say "the stack is already up (run dir $RUN):"
      stack_status || true
      return 0
    fi
    say "the stack is partly up; starting the missing parts"
  fi
  need_mariadb
  build
  local bin
  bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"
  printf '%s\n' "$bin" >"$RUN/bin-dir"
  for part in edge registrar dbsync; do
    [ -x "$bin/$part" ] || die "$bin/$part missing after the build"
  done
  local tool
  for tool in setsid timeout; do
    command -v "$tool" >/dev/null || die "$tool is missing (util-linux / coreutils)"
  done
  write_configs

  start_mariadb a
  start_mariadb b
  create_users a
  create_users b
  say "dbsync setup: cross-replication and schema"
  "$bin/dbsync" --config "$ETC/dbsync.toml" setup >>"$LOGS/dbsync-setup.log" 2>&1 ||
    die "dbsync setup failed:
$(tail -n 20 "$LOGS/dbsync-setup.log")"
  create_subscribers

  if ! live_pid dbsync-watch >/dev/null; then
    start dbsync-watch "$LOGS/dbsync-watch.log" "$bin/dbsync" --config "$ETC/dbsync.toml" watch
  fi
  wait_http dbsync-watch "$DBSYNC_HTTP"
  local n ip
  for n in 1 2; do
    ip=$([ "$n" = 1 ] && echo "$REG1_IP" || echo "$REG2_IP")
    if ! live_pid "registrar-$n" >/dev/null; then
      port_busy "$ip" "$REG_HTTP_PORT" && die "$ip:$REG_HTTP_PORT is taken by another process"
      start "registrar-$n" "$LOGS/registrar-$n.log" "$bin/registrar" --config "$ETC/registrar-$n.toml"
    fi
    wait_http "registrar-$n" "$ip:$REG_HTTP_PORT"
  done
  if ! live_pid edge >/dev/null; then
    port_busy 127.0.0.1 "${EDGE_SIP##*:}" && die "$EDGE_SIP (TCP) is taken by another process"
    local owner
    owner=$(udp_owner 127.0.0.1 "${EDGE_SIP##*:}") &&
      die "$EDGE_SIP (UDP) is taken by $owner (sipp without -p binds 5060 by default)"
    start edge "$LOGS/edge.log" "$bin/edge" --config "$ETC/edge.toml"
  fi
  wait_http edge "$EDGE_HTTP"

  local users=""
  for pair in $DEMO_USERS; do users="$users ${pair%%:*}/${pair#*:}"; done
  cat <<EOF

hasip is up (run dir $RUN, logs in $LOGS).

  edge        sip:$EDGE_SIP (UDP and TCP)      health http://$EDGE_HTTP/health
  registrar 1 $REG1_IP:$REG_SIP_PORT                     health http://$REG1_IP:$REG_HTTP_PORT/health
  registrar 2 $REG2_IP:$REG_SIP_PORT                     health http://$REG2_IP:$REG_HTTP_PORT/health
  MariaDB A   127.0.0.1:$DB_A_PORT   MariaDB B 127.0.0.1:$DB_B_PORT   (root, no password; app user hasip/$APP_PASSWORD)
  dbsync      watching               health http://$DBSYNC_HTTP/health, metrics /metrics

Demo subscribers in domain $DOMAIN (user/password):$users

Register alice with sipp (digest auth through the edge):
  sipp $EDGE_SIP -sf $ETC/register.xml -key domain $DOMAIN -s alice -au alice -ap alice-pw -m 1 -t u1 -i 127.0.0.1 -nostdin

Then look at her binding:
  $bin/registrar --config $ETC/registrar-1.toml show alice@$DOMAIN
  $bin/dbsync --config $ETC/dbsync.toml status

scripts/stack status   shows each part's health;   scripts/stack down   stops it all.
EOF
}

stack_down() {
  local part reversed=""
  for part in $PARTS; do reversed="$part $reversed"; done
  if ! any_running; then
    say "nothing of the stack is running (run dir $RUN)"
    return 0
  fi
  say "stopping the stack (run dir $RUN)"
  for part in $reversed; do
    case $part in
      mariadb-*) stop "$part" 120 ;;
      *) stop "$part" 30 ;;
    esac
  done
}

stack_status() {
  local part pid health addr bad=0
  [ -d "$PIDS" ] || {
    say "the stack was never started here (run dir $RUN)"
    return 3
  }
  printf '%-13s %-8s %s\n' PART PID HEALTH
  for part in $PARTS; do
    addr=""
    case $part in
      edge) addr=$EDGE_HTTP ;;
      registrar-1) addr=$REG1_IP:$REG_HTTP_PORT ;;
      registrar-2) addr=$REG2_IP:$REG_HTTP_PORT ;;
      dbsync-watch) addr=$DBSYNC_HTTP ;;
    esac
    if pid=$(live_pid "$part"); then
      if [ -n "$addr" ]; then
        health=$(http_get "$addr" /health) || health="no answer on http://$addr/health"
      elif sql "$(db_port "${part#mariadb-}")" -N -e 'SELECT @@gtid_binlog_pos' >/dev/null 2>&1; then
        health="accepting connections on 127.0.0.1:$(db_port "${part#mariadb-}")"
      else
        health="not accepting connections"
      fi
      case $health in 200*) ;; accepting*) ;; *) bad=1 ;; esac
    else
      pid=-
      health="not running"
      bad=1
    fi
    printf '%-13s %-8s %s\n' "$part" "$pid" "$health"
  done
  local bin
  bin=$(bin_dir)
  if [ -x "$bin/dbsync" ] && [ -f "$ETC/dbsync.toml" ]; then
    say ""
    say "dbsync status:"
    "$bin/dbsync" --config "$ETC/dbsync.toml" status 2>&1 || bad=1
  fi
  return "$bad"
}
