#!/usr/bin/env bash
# Tools and services the test suite needs (DESIGN.md, "Real components in tests").
#
# Sourced by scripts/test. Every function is idempotent: it checks first and installs or starts
# only what is missing, so the same script works on a developer's machine, on CI's, and on a
# brand-new machine where nothing was installed by hand.
#
# Run directly to check and start everything except moto (which lives only as long as a test run):
#   scripts/services.sh
#
# Tunables (environment): PG_HOST/PG_PORT (127.0.0.1:5432), REDIS_HOST/REDIS_PORT
# (127.0.0.1:6379), S3_TEST_BUCKET (agenticai-test).

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
S3_TEST_BUCKET=${S3_TEST_BUCKET:-agenticai-test}

MOTO_PID=
MOTO_PORT=
MOTO_LOG=

say() { printf '    %s\n' "$*"; }
warn() { printf '    WARNING: %s\n' "$*" >&2; }
die() {
  printf '    ERROR: %s\n' "$*" >&2
  exit 1
}

# Tools installed per user (rustup, pyenv) may be missing from a bare PATH: add their usual homes.
path_add_user_tool_dirs() {
  local d
  for d in /usr/local/bin "$HOME/.pyenv/shims" "$HOME/.cargo/bin"; do
    if [[ -d $d && ":$PATH:" != *":$d:"* ]]; then
      PATH="$d:$PATH"
    fi
  done
  export PATH
}

apt_install() {
  # Try the install first: the package lists are usually fresh enough; update only if that fails.
  local -a apt=(apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false)
  if DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" </dev/null >/tmp/agenticai-apt.log 2>&1; then
    return 0
  fi
  say "apt-get install $* failed; running apt-get update and retrying"
  DEBIAN_FRONTEND=noninteractive apt-get -q update </dev/null >>/tmp/agenticai-apt.log 2>&1 || true
  if DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" </dev/null >>/tmp/agenticai-apt.log 2>&1; then
    return 0
  fi
  tail -n 20 /tmp/agenticai-apt.log >&2
  return 1
}

ensure_bwrap() {
  if ! command -v bwrap >/dev/null 2>&1; then
    say "bwrap missing: installing Debian's bubblewrap"
    apt_install bubblewrap || die "could not install bubblewrap"
  fi
  say "bwrap: $(bwrap --version 2>&1 | head -n1)"
  # A sandbox that cannot start is the executor's problem to report, but say so early.
  if ! bwrap --ro-bind / / --unshare-all --die-with-parent true >/dev/null 2>&1; then
    warn "bwrap is installed but cannot create a sandbox here (user namespaces disabled?)"
  fi
}

moto_command() {
  # Prints the command that runs moto's S3 server, or fails.
  if moto_server --help >/dev/null 2>&1; then
    echo moto_server
  elif python3 -m moto.server --help >/dev/null 2>&1; then
    echo "python3 -m moto.server"
  else
    return 1
  fi
}

ensure_moto() {
  if ! moto_server --help >/dev/null 2>&1; then
    say "moto_server missing: pip install 'moto[server]'"
    local -a pip=(python3 -m pip install --quiet --disable-pip-version-check --no-input
      --root-user-action=ignore)
    if ! "${pip[@]}" 'moto[server]' </dev/null; then
      # A system Python (PEP 668) refuses plain installs.
      "${pip[@]}" --break-system-packages 'moto[server]' </dev/null ||
        die "could not pip install 'moto[server]'"
    fi
    hash -r
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
  fi
  local cmd
  cmd=$(moto_command) || die "moto installed but neither moto_server nor python3 -m moto.server runs"
  say "moto: $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?') via '$cmd'"
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    say "cargo-nextest missing: cargo install cargo-nextest --locked (takes a few minutes)"
    cargo install --quiet cargo-nextest --locked </dev/null || die "could not install cargo-nextest"
  fi
  say "nextest: $(cargo nextest --version 2>/dev/null | head -n1)"
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found (the machine's Rust toolchain is required)"
  say "cargo: $(cargo --version)"
  cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing from the toolchain"
  cargo clippy --version >/dev/null 2>&1 || die "clippy missing from the toolchain"
}

ensure_tools() {
  path_add_user_tool_dirs
  ensure_rust
  ensure_nextest
  ensure_bwrap
  ensure_moto
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }

ensure_postgres() {
  command -v pg_isready >/dev/null 2>&1 || die "pg_isready not found: PostgreSQL is not installed"
  if ! pg_up; then
    local version
    # shellcheck disable=SC2012 # cluster versions are plain numbers
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    [[ -n $version ]] || die "Postgres is down on $PG_HOST:$PG_PORT and no cluster in /etc/postgresql"
    say "Postgres down: pg_ctlcluster $version main start"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
      warn "pg_ctlcluster exited non-zero; waiting for the server anyway"
    for _ in $(seq 1 60); do
      pg_up && break
      sleep 0.5
    done
    pg_up || die "Postgres did not come up on $PG_HOST:$PG_PORT"
  fi
  # Tests use database `test` (trust auth, user postgres); create it if a machine lacks it.
  local psql=(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -X -q -t -A)
  if [[ -z $("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null) ]]; then
    say "creating database test"
    "${psql[@]}" -d postgres -c 'CREATE DATABASE test' >/dev/null || die "could not create database test"
  fi
  say "Postgres: $("${psql[@]}" -d test -c 'SHOW server_version' 2>/dev/null) on $PG_HOST:$PG_PORT, database test"
}

redis_up() { [[ $(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

ensure_redis() {
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found: Redis is not installed"
  if ! redis_up; then
    say "Redis down: starting redis-server on $REDIS_HOST:$REDIS_PORT"
    local -a extra=(--dir /tmp)
    if [[ -d /var/lib/redis && -w /var/lib/redis && -d /var/log/redis ]]; then
      extra=(--dir /var/lib/redis --logfile /var/log/redis/ci.log)
    fi
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
      --save "" --appendonly no "${extra[@]}" </dev/null || die "redis-server failed to start"
    for _ in $(seq 1 40); do
      redis_up && break
      sleep 0.25
    done
    redis_up || die "Redis did not come up on $REDIS_HOST:$REDIS_PORT"
  fi
  say "Redis: $(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" info server 2>/dev/null |
    sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p') on $REDIS_HOST:$REDIS_PORT"
}

ensure_services() {
  ensure_postgres
  ensure_redis
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Answers 0 once moto serves HTTP on $1.
moto_answers() {
  python3 - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=2).read()
PY
}

# Starts moto's S3 server on a free loopback port in the background and creates the test bucket.
# Sets MOTO_PORT and MOTO_PID. The caller must call stop_moto (scripts/test does so in a trap).
start_moto() {
  local cmd attempt
  cmd=$(moto_command) || die "moto is not installed (run ensure_moto first)"
  MOTO_LOG=$(mktemp -t agenticai-moto.XXXXXX)
  for attempt in 1 2 3; do
    MOTO_PORT=$(free_port)
    # shellcheck disable=SC2086 # $cmd is one or three words on purpose
    $cmd -H 127.0.0.1 -p "$MOTO_PORT" </dev/null >"$MOTO_LOG" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 1 120); do
      kill -0 "$MOTO_PID" 2>/dev/null || break
      if moto_answers "$MOTO_PORT"; then
        create_s3_bucket "$MOTO_PORT" "$S3_TEST_BUCKET"
        say "moto: S3 on http://127.0.0.1:$MOTO_PORT (pid $MOTO_PID), bucket $S3_TEST_BUCKET, log $MOTO_LOG"
        return 0
      fi
      sleep 0.25
    done
    # Died (port taken between free_port and bind?) or never answered: try another port.
    stop_moto
    warn "moto did not start on port $MOTO_PORT (attempt $attempt); log:"
    tail -n 20 "$MOTO_LOG" >&2 || true
  done
  die "moto_server would not start"
}

create_s3_bucket() {
  # moto does not check signatures, so a plain PUT creates the bucket.
  python3 - "$1" "$2" <<'PY' || die "could not create bucket $2 in moto"
import sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/%s" % (sys.argv[1], sys.argv[2]), method="PUT")
urllib.request.urlopen(req, timeout=5).read()
PY
}

stop_moto() {
  if [[ -n ${MOTO_PID:-} ]]; then
    if kill -0 "$MOTO_PID" 2>/dev/null; then
      kill "$MOTO_PID" 2>/dev/null || true
      for _ in $(seq 1 20); do
        kill -0 "$MOTO_PID" 2>/dev/null || break
        sleep 0.25
      done
      kill -9 "$MOTO_PID" 2>/dev/null || true
    fi
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=
  fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  echo "==> tools"
  ensure_tools
  echo "==> services"
  ensure_services
fi
