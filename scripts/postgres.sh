#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with user postgres / password postgres.
# Installs Debian's postgresql when absent. Used by `.ci/run`, `scripts/test.sh` and `govmeter dev`.
set -euo pipefail

answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if answers; then
  echo "PostgreSQL already answers on 127.0.0.1:5432"
  exit 0
fi
if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  echo "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q postgresql
fi
read -r version cluster _ < <(pg_lsclusters -h | head -n 1)
# Loopback only, never 0.0.0.0.
conf="/etc/postgresql/$version/$cluster/postgresql.conf"
grep -q "^listen_addresses = 'localhost'" "$conf" || echo "listen_addresses = 'localhost'" >> "$conf"
# Sizing for an event store that takes tens of thousands of rows a second (Debian's defaults suit a laptop):
# the indexes the worker writes stay in shared buffers (a quarter of the machine's memory, 6 GB of 24: the event
# store's key index grows ~40 bytes an event and every insert lands on a random leaf of it, docs/partitioning.md),
# checkpoints come seldom enough that full-page images stay rare, and those there are go to the WAL compressed.
# Sized from the machine, so that a smaller one (a laptop running the demo) still starts.
shared_buffers_mb=$(awk '/^MemTotal:/ {mb = int($2 / 4 / 1024); print (mb < 128 ? 128 : mb)}' /proc/meminfo)
cat > "/etc/postgresql/$version/$cluster/conf.d/govmeter.conf" <<CONF
shared_buffers = ${shared_buffers_mb}MB
max_wal_size = 8GB
checkpoint_timeout = 15min
wal_compression = lz4
CONF
# Installing the package may have started the cluster already: restart it so that the settings above apply.
if pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c && $4 == "online" {found = 1} END {exit !found}'; then
  pg_ctlcluster "$version" "$cluster" restart
else
  pg_ctlcluster "$version" "$cluster" start || true
fi
for _ in $(seq 1 60); do answers && break; sleep 0.5; done
answers || { echo "PostgreSQL did not start"; tail -n 30 "/var/log/postgresql/postgresql-$version-$cluster.log"; exit 1; }
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
echo "PostgreSQL $version/$cluster is up on 127.0.0.1:5432"
