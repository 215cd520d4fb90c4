#!/usr/bin/env bash
# quickstart.sh — a working lifeboat demo on this machine, after scripts/provision.sh:
#
#   ./scripts/provision.sh && ./scripts/quickstart.sh        # back up, wreck, restore, drill
#   ./scripts/quickstart.sh stop                             # stop the demo server, keep ./demo
#   ./scripts/quickstart.sh clean                            # stop it and delete ./demo
#
# What it does, printing every lifeboat command it runs:
#   1. builds lifeboat (dist/) if needed;
#   2. starts a throwaway PostgreSQL 15 in ./demo/pg (127.0.0.1, a free port, WAL archived with
#      `lifeboat wal-push`) and loads a small shop database;
#   3. writes ./demo/lifeboat.yaml: a local repository in ./demo/repo, the shop as a source (logical dumps
#      plus base backups and WAL), and a drill target database on the same server;
#   4. lifeboat init, backup, list;
#   5. a disaster: the orders table is dropped and customers deleted;
#   6. lifeboat restore latest --force --yes, then validate;
#   7. lifeboat drill (restore into the drill target, compare, RTO/RPO).
# PostgreSQL refuses to run as root, so as root the server (and lifeboat, which its archive_command
# runs) runs as the `postgres` user and ./demo belongs to it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${LIFEBOAT_DEMO_DIR:-$ROOT/demo}"
PGBIN=/usr/lib/postgresql/15/bin
PGDATA="$DEMO/pg"

log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi
}
lifeboat() {
  printf '$ lifeboat %s\n' "$*"
  as_owner node "$ROOT/bin/lifeboat.js" --config "$DEMO/lifeboat.yaml" "$@"
}
psql_demo() { psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

stop_server() {
  if [ -f "$PGDATA/postmaster.pid" ]; then as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; fi
}

case "${1:-run}" in
  stop) stop_server; exit 0 ;;
  clean) stop_server; rm -rf "$DEMO"; exit 0 ;;
  run) ;;
  *) echo "usage: $0 [run|stop|clean]" >&2; exit 2 ;;
esac

[ -x "$PGBIN/postgres" ] || { echo "PostgreSQL 15 is missing: run ./scripts/provision.sh first" >&2; exit 1; }
[ -d "$ROOT/node_modules" ] || { echo "node_modules is missing: run ./scripts/provision.sh first" >&2; exit 1; }
if [ ! -f "$ROOT/dist/lifeboat/main.js" ]; then log "building lifeboat"; (cd "$ROOT" && npm run build --silent); fi

stop_server
rm -rf "$DEMO"
mkdir -p "$DEMO"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DEMO"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

log "writing $DEMO/lifeboat.yaml"
as_owner tee "$DEMO/lifeboat.yaml" >/dev/null <<EOF
# The quickstart's configuration: a local repository, one PostgreSQL source, one drill target.
repository:
  url: $DEMO/repo
  password: quickstart-demo-password   # use passwordFile or \${LIFEBOAT_PASSWORD} for real
sources:
  shop:
    engine: postgres
    url: postgres://postgres@127.0.0.1:$PORT/shop
    mode: both          # pg_dump of the database, plus base backups and the WAL archive for PITR
drills:
  targets:
    shop:
      url: postgres://postgres@127.0.0.1:$PORT/shop_drill
objectives:
  shop: { rpo: 1h, rto: 15m }
retention:
  keepLast: 7
  keepDaily: 7
EOF

log "starting PostgreSQL 15 on 127.0.0.1:$PORT (data in $PGDATA, WAL archived by lifeboat wal-push)"
as_owner "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --no-sync --no-instructions >/dev/null
ARCHIVE_COMMAND="$(command -v node) $ROOT/bin/lifeboat.js --config $DEMO/lifeboat.yaml wal-push --source shop %p"
as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -l "$DEMO/postgres.log" -w start -o \
  "-p $PORT -k $PGDATA -c listen_addresses=127.0.0.1 -c wal_level=replica -c archive_mode=on -c archive_command='$ARCHIVE_COMMAND'" >/dev/null

log "loading a sample shop database"
psql_demo -d postgres -c 'CREATE DATABASE shop'
psql_demo -d shop <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, joined date);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2), placed timestamptz);
INSERT INTO customers (name, email, joined)
  SELECT 'customer ' || i, 'c' || i || '@example.test', date '2020-01-01' + i % 1500 FROM generate_series(1, 5000) i;
INSERT INTO orders (customer_id, total, placed)
  SELECT 1 + i % 5000, (i % 300) + 0.99, now() - i * interval '1 minute' FROM generate_series(1, 20000) i;
SQL
psql_demo -d shop -tA -c "SELECT 'customers: ' || (SELECT count(*) FROM customers) || ', orders: ' || (SELECT count(*) FROM orders)"

log "backing up"
lifeboat init
lifeboat backup
lifeboat list

log "disaster: orders dropped, customers deleted"
psql_demo -d shop -c 'DROP TABLE orders; DELETE FROM customers;'
lifeboat validate || true

log "restoring the latest recovery point over the damaged database"
lifeboat restore latest --force --yes
psql_demo -d shop -tA -c "SELECT 'customers: ' || (SELECT count(*) FROM customers) || ', orders: ' || (SELECT count(*) FROM orders)"
lifeboat validate

log "drill: restore into shop_drill, compare, report RTO and RPO"
lifeboat drill

log "done"
cat <<EOF
The demo server keeps running on 127.0.0.1:$PORT. Try:
  node bin/lifeboat.js --config $DEMO/lifeboat.yaml show latest
  node bin/lifeboat.js --config $DEMO/lifeboat.yaml check
  ./scripts/quickstart.sh stop     # or: clean (also deletes $DEMO)
EOF
