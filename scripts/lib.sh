# Shared by scripts/up and scripts/test: a virtual environment with the project installed,
# and a PostgreSQL and a Redis to talk to. Sourced, not run.
#
# PostgreSQL: DATABASE_URL if set (it must answer); else the server on 127.0.0.1:5432 as
# user postgres; else a private server in .data/pg on port 54329, started from the
# system's binaries (Debian's postgresql package is installed when they are missing).
# Redis likewise: REDIS_URL, else 127.0.0.1:6379, else a private one on port 63799.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.data"
VENV="$ROOT/.venv"
PRIVATE_PG_PORT=54329
PRIVATE_REDIS_PORT=63799

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
    else die "need root to run: $*"; fi
}

apt_install() {
    say "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

python_bin() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"; return
        fi
    done
    die "Python 3.11 or newer is required"
}

ensure_venv() {
    mkdir -p "$DATA"
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the virtual environment in .venv"
        "$(python_bin)" -m venv "$VENV"
    fi
    # Reinstall only when the project's dependencies changed.
    local stamp="$VENV/.installed" want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing the project and its test tools"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
        echo "$want" > "$stamp"
    fi
}

probe() { "$VENV/bin/python" "$ROOT/scripts/probe.py" "$@"; }

pg_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        apt_install postgresql
        dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    fi
    echo "$dir"
}

# Runs a PostgreSQL server binary as the postgres user when we are root (it refuses root).
pg_run() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_private_postgres() {
    local bindir pgdata="$DATA/pg/data"
    bindir="$(pg_bindir)"
    mkdir -p "$DATA/pg"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DATA/pg"; fi
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        say "initialising a private PostgreSQL in .data/pg"
        pg_run "$bindir/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    say "starting the private PostgreSQL on 127.0.0.1:$PRIVATE_PG_PORT"
    pg_run "$bindir/pg_ctl" -D "$pgdata" -l "$DATA/pg/server.log" -w -o \
        "-p $PRIVATE_PG_PORT -k $DATA/pg -c listen_addresses=127.0.0.1" start >/dev/null
}

# Sets PG_ADMIN_URL (a server-level connection that may create databases).
ensure_postgres() {
    if [ -n "${DATABASE_URL:-}" ]; then
        probe pg "$DATABASE_URL" || die "DATABASE_URL does not answer: $DATABASE_URL"
        PG_ADMIN_URL="$DATABASE_URL"
        return
    fi
    local local_url="postgresql://postgres@127.0.0.1:5432/postgres"
    local private_url="postgresql://postgres@127.0.0.1:$PRIVATE_PG_PORT/postgres"
    if probe pg "$local_url"; then
        PG_ADMIN_URL="$local_url"
    elif probe pg "$private_url"; then
        PG_ADMIN_URL="$private_url"
    else
        start_private_postgres
        probe pg "$private_url" || die "the private PostgreSQL did not start; see .data/pg/server.log"
        PG_ADMIN_URL="$private_url"
    fi
}

# Sets REDIS_URL.
ensure_redis() {
    if [ -n "${REDIS_URL:-}" ]; then
        probe redis "$REDIS_URL" || die "REDIS_URL does not answer: $REDIS_URL"
        return
    fi
    if probe redis "redis://127.0.0.1:6379/0"; then
        REDIS_URL="redis://127.0.0.1:6379/0"
        return
    fi
    REDIS_URL="redis://127.0.0.1:$PRIVATE_REDIS_PORT/0"
    if probe redis "$REDIS_URL"; then return; fi
    command -v redis-server >/dev/null || apt_install redis-server
    mkdir -p "$DATA/redis"
    say "starting a private Redis on 127.0.0.1:$PRIVATE_REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$PRIVATE_REDIS_PORT" --dir "$DATA/redis" \
        --daemonize yes --save "" --appendonly no --logfile "$DATA/redis/server.log" \
        --pidfile "$DATA/redis/redis.pid"
    for _ in $(seq 50); do probe redis "$REDIS_URL" && return; sleep 0.1; done
    die "the private Redis did not start; see .data/redis/server.log"
}

# A data key for values sealed in the application, made once and kept in .data.
ensure_data_key() {
    local file="$DATA/data-key"
    if [ -z "${CASEMGR_DATA_KEYS:-}" ]; then
        if [ ! -f "$file" ]; then
            (umask 077; "$VENV/bin/python" -c \
                'import base64, os; print("k1:" + base64.b64encode(os.urandom(32)).decode())' \
                > "$file")
        fi
        CASEMGR_DATA_KEYS="$(cat "$file")"
    fi
    export CASEMGR_DATA_KEYS
}
