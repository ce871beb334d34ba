#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster on loopback and makes a superuser role for the test run.
# Prints the URL to use as TAYORI_TEST_POSTGRES_URL.
set -euo pipefail
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  pg_createcluster "$version" main >/dev/null
  cluster="$version main"
fi
set -- $cluster
conf="/etc/postgresql/$1/$2/postgresql.conf"
grep -q "^listen_addresses = '127.0.0.1,::1'" "$conf" || echo "listen_addresses = '127.0.0.1,::1'" >> "$conf"
pg_ctlcluster "$1" "$2" start >/dev/null 2>&1 || pg_ctlcluster "$1" "$2" status >/dev/null
port=$(pg_lsclusters --no-header | awk -v v="$1" -v c="$2" '$1==v && $2==c {print $3}')
for _ in $(seq 1 30); do
  runuser -u postgres -- pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
runuser -u postgres -- psql -q -p "$port" -tAc \
  "SELECT 1 FROM pg_roles WHERE rolname='tayori'" | grep -q 1 ||
  runuser -u postgres -- psql -q -p "$port" -c "CREATE ROLE tayori LOGIN SUPERUSER PASSWORD 'tayori'" >/dev/null
runuser -u postgres -- psql -q -p "$port" -tAc \
  "SELECT 1 FROM pg_database WHERE datname='tayori'" | grep -q 1 ||
  runuser -u postgres -- createdb -p "$port" -O tayori tayori
echo "postgresql://tayori:tayori@127.0.0.1:$port/tayori"
