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
pg_ctlcluster "$version" "$cluster" start || true
for _ in $(seq 1 60); do answers && break; sleep 0.5; done
answers || { echo "PostgreSQL did not start"; tail -n 30 "/var/log/postgresql/postgresql-$version-$cluster.log"; exit 1; }
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
echo "PostgreSQL $version/$cluster is up on 127.0.0.1:5432"
