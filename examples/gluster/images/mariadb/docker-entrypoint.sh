#!/bin/bash
# corral's mariadb image: the official image's entrypoint, in short.
#
# On an empty data directory it creates the system tables, sets the root
# password, and then either
#   - (a primary) creates MARIADB_DATABASE, MARIADB_USER and the replication
#     user MARIADB_REPLICATION_USER, or
#   - (a replica, when MARIADB_MASTER_HOST is set) points replication at
#     MARIADB_MASTER_HOST:MARIADB_MASTER_PORT with GTIDs (slave_pos). The
#     replica's I/O thread then waits for the primary, retrying every 10s,
#     and replays its binary log from the start: its database and users too.
# Then it runs mariadbd as user mysql. Arguments starting with "-" go to
# mariadbd; $(VAR) references left in them are expanded from the environment.
set -eo pipefail
shopt -s nullglob

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The official image's MYSQL_* names still work.
for name in ROOT_PASSWORD ROOT_HOST DATABASE USER PASSWORD ALLOW_EMPTY_ROOT_PASSWORD \
	RANDOM_ROOT_PASSWORD; do
	old=MYSQL_$name new=MARIADB_$name
	if [ -z "${!new:-}" ] && [ -n "${!old:-}" ]; then export "$new=${!old}"; fi
done

# Kubernetes expands $(VAR) in args; under plain `docker run` nothing does.
expand() {
	local rest=$1 out="" whole name
	while [[ $rest =~ \$\(([A-Za-z_][A-Za-z0-9_]*)\) ]]; do
		whole=${BASH_REMATCH[0]} name=${BASH_REMATCH[1]}
		out+=${rest%%"$whole"*}
		if [ -n "${!name+set}" ]; then out+=${!name}; else out+=$whole; fi
		rest=${rest#*"$whole"}
	done
	printf '%s' "$out$rest"
}

if [ "$#" -eq 0 ] || [ "${1:0:1}" = - ]; then
	set -- mariadbd "$@"
fi
expanded=()
for arg in "$@"; do expanded+=("$(expand "$arg")"); done
set -- "${expanded[@]}"

if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then
	exec "$@"
fi

# A StatefulSet's pods share one template: each takes its server id from its
# ordinal (POD_NAME from the downward API), so no two copies share one.
if [ -z "${MARIADB_SERVER_ID:-}" ] && [[ ${POD_NAME:-} =~ -([0-9]+)$ ]]; then
	MARIADB_SERVER_ID=$((BASH_REMATCH[1] + 1))
fi
if [ -n "${MARIADB_SERVER_ID:-}" ] && ! printf '%s\n' "$@" | grep -Eq -- '^--server[-_]id='; then
	set -- "$@" "--server-id=$MARIADB_SERVER_ID"
fi

# The server and its tools run as mysql (setpriv execs, so the pid stays the server's).
as_mysql=()
if [ "$(id -u)" = 0 ]; then
	as_mysql=(setpriv --reuid=mysql --regid=mysql --init-groups --)
fi

# A setting as the server will see it, with this configuration and these arguments.
setting() {
	local key=$1
	shift
	"$@" --verbose --help 2>/dev/null | awk -v key="$key" '/^[^ \t]/ && $1 == key && !found { found = 1; print $2 }'
}

sql_string() { # for '...' literals
	local s=${1//\\/\\\\}
	s=${s//\'/\\\'}
	printf '%s' "$s"
}
sql_name() { # for `...` identifiers
	printf '%s' "${1//\`/\`\`}"
}

datadir=$(setting datadir "$@")
socket=$(setting socket "$@")
datadir=${datadir%/}
[ -n "$datadir" ] && [ -n "$socket" ] || die "cannot read datadir and socket from the configuration"

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$datadir" "$(dirname "$socket")" /run/mysqld
	# An emptyDir or a fresh volume is root's.
	find "$datadir" "$(dirname "$socket")" /run/mysqld \! -user mysql -exec chown mysql:mysql {} +
fi

initialize() {
	local replica=${MARIADB_MASTER_HOST:+yes}
	if [ -z "${MARIADB_ROOT_PASSWORD:-}" ]; then
		if [ -n "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
			MARIADB_ROOT_PASSWORD=$(head -c 18 /dev/urandom | base64)
			log "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
		elif [ -z "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" ]; then
			die "the database is uninitialized and MARIADB_ROOT_PASSWORD is not set" \
				"(or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, or MARIADB_RANDOM_ROOT_PASSWORD)"
		fi
	fi
	if [ -n "$replica" ] && [ -z "${MARIADB_REPLICATION_USER:-}" ]; then
		die "a replica (MARIADB_MASTER_HOST=$MARIADB_MASTER_HOST) needs MARIADB_REPLICATION_USER" \
			"and MARIADB_REPLICATION_PASSWORD"
	fi

	log "initializing the database in $datadir"
	"${as_mysql[@]}" mariadb-install-db --datadir="$datadir" --rpm --skip-test-db \
		--auth-root-authentication-method=normal --skip-name-resolve \
		--skip-log-bin --expire-logs-days=0 --default-time-zone=SYSTEM \
		--enforce-storage-engine= \
		--loose-innodb_buffer_pool_load_at_startup=0 \
		--loose-innodb_buffer_pool_dump_at_shutdown=0 \
		"${@:2}" >/dev/null

	log "starting a temporary server on $socket only"
	"${as_mysql[@]}" "$@" --skip-networking --socket="$socket" --default-time-zone=SYSTEM \
		--wsrep_on=OFF --skip-slave-start --expire-logs-days=0 \
		--loose-innodb_buffer_pool_load_at_startup=0 &
	local pid=$! i
	local client=(mariadb --protocol=socket --socket="$socket" -uroot --binary-mode)
	for i in $(seq 60); do
		if "${client[@]}" -e 'SELECT 1' >/dev/null 2>&1; then break; fi
		kill -0 "$pid" 2>/dev/null || die "the temporary server exited"
		sleep 1
	done
	"${client[@]}" -e 'SELECT 1' >/dev/null || die "the temporary server did not start"

	local root_host=${MARIADB_ROOT_HOST:-%}
	local root_password
	root_password=$(sql_string "${MARIADB_ROOT_PASSWORD:-}")
	local sql
	# The server's own accounts: never in the binary log, so they never replicate.
	sql="SET @@SESSION.SQL_LOG_BIN=0;
DROP USER IF EXISTS ''@'localhost', 'root'@'127.0.0.1', 'root'@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS \\'\\'@\\'', @@hostname, '\\'');
ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_password';"
	if [ "$root_host" != localhost ]; then
		sql+="
CREATE USER 'root'@'$(sql_string "$root_host")' IDENTIFIED BY '$root_password';
GRANT ALL ON *.* TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;"
	fi
	if [ -n "${MARIADB_REPLICATED:-}" ]; then
		# A member of a replicated set: corral's controller decides which
		# copy leads, and its promote hook (mariadb-replication) makes the
		# application's database and users on the first primary only.
		log "a replicated-set member: the first promote makes the database and users"
	elif [ -z "$replica" ]; then
		# The application's database and users: in the binary log, so that
		# replicas, which replay it from the start, have them too.
		sql+="
SET @@SESSION.SQL_LOG_BIN=1;"
		if [ -n "${MARIADB_DATABASE:-}" ]; then
			sql+="
CREATE DATABASE IF NOT EXISTS \`$(sql_name "$MARIADB_DATABASE")\`;"
		fi
		if [ -n "${MARIADB_USER:-}" ]; then
			[ -n "${MARIADB_PASSWORD:-}" ] || die "MARIADB_USER needs MARIADB_PASSWORD"
			sql+="
CREATE USER '$(sql_string "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_string "$MARIADB_PASSWORD")';"
			if [ -n "${MARIADB_DATABASE:-}" ]; then
				sql+="
GRANT ALL ON \`$(sql_name "$MARIADB_DATABASE")\`.* TO '$(sql_string "$MARIADB_USER")'@'%';"
			fi
		fi
		if [ -n "${MARIADB_REPLICATION_USER:-}" ]; then
			sql+="
CREATE USER '$(sql_string "$MARIADB_REPLICATION_USER")'@'%' IDENTIFIED BY '$(sql_string "${MARIADB_REPLICATION_PASSWORD:-}")';
GRANT REPLICATION SLAVE ON *.* TO '$(sql_string "$MARIADB_REPLICATION_USER")'@'%';"
		fi
	else
		if [ -n "${MARIADB_DATABASE:-}${MARIADB_USER:-}" ]; then
			log "a replica: MARIADB_DATABASE and MARIADB_USER come from the primary, not made here"
		fi
		sql+="
CHANGE MASTER TO
  MASTER_HOST='$(sql_string "$MARIADB_MASTER_HOST")',
  MASTER_PORT=${MARIADB_MASTER_PORT:-3306},
  MASTER_USER='$(sql_string "$MARIADB_REPLICATION_USER")',
  MASTER_PASSWORD='$(sql_string "${MARIADB_REPLICATION_PASSWORD:-}")',
  MASTER_CONNECT_RETRY=10,
  MASTER_USE_GTID=slave_pos;"
	fi
	printf '%s\n' "$sql" | "${client[@]}"

	local file
	for file in /docker-entrypoint-initdb.d/*; do
		case $file in
		*.sh) log "running $file"; . "$file" ;;
		*.sql) log "running $file"; "${client[@]}" -p"${MARIADB_ROOT_PASSWORD:-}" <"$file" ;;
		*.sql.gz) log "running $file"; gunzip -c "$file" | "${client[@]}" -p"${MARIADB_ROOT_PASSWORD:-}" ;;
		*) log "ignoring $file" ;;
		esac
	done

	kill -TERM "$pid"
	wait "$pid" || true
	if [ -n "$replica" ]; then
		log "initialized as a replica of ${MARIADB_MASTER_HOST}:${MARIADB_MASTER_PORT:-3306}"
	else
		log "initialized${MARIADB_DATABASE:+ with database $MARIADB_DATABASE}"
	fi
}

if [ ! -d "$datadir/mysql" ]; then
	initialize "$@"
fi
log "starting $*"
exec "${as_mysql[@]}" "$@"
