#!/bin/bash
# mariadb-replication: the hooks corral's replicated-set controller runs in this
# container (see corral/replication.py and docs/replication.md).
#
#   status            one JSON line: {"role": ..., "position": [seq], "writable": bool}
#   promote           apply what was received, stop replicating, take writes
#   demote            stop taking writes (the fence)
#   follow ADDRESS    replicate the primary at ADDRESS; exit 3 if this copy diverged
#   rebuild ADDRESS   replace this copy with a dump of the primary's, then follow it
#
# ADDRESS is the primary pod's IP; IP:PORT names another port than 3306.
#
# Roles: "replica" when replication is configured and healthy; "empty" when
# this server holds no transaction of its own and follows no one (a new copy),
# or when its replication stopped on an error that says the copy diverged;
# "primary" otherwise. The position is the sequence number of GTID domain 0:
# replicas count what they have *received* (semi-synchronous replication
# acknowledges a commit once a replica has it in its relay log).
set -euo pipefail

PORT=${MARIADB_PORT:-3306}
WAIT_APPLIED_SECONDS=${MARIADB_PROMOTE_APPLY_TIMEOUT:-20}
FOLLOW_WAIT_SECONDS=${MARIADB_FOLLOW_WAIT:-8}

die() { printf 'mariadb-replication: %s\n' "$*" >&2; exit 1; }

sql_string() {
	local s=${1//\\/\\\\}
	s=${s//\'/\\\'}
	printf '%s' "$s"
}
sql_name() { printf '%s' "${1//\`/\`\`}"; }

# Read from the option files (a running server's --help would start a second
# one's checks); Debian's compiled-in default otherwise.
socket=$(my_print_defaults --mysqld 2>/dev/null | sed -n 's/^--socket=//p' | tail -n 1)
socket=${socket:-/run/mysqld/mysqld.sock}
local_sql() {
	MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-} mariadb --protocol=socket --socket="$socket" -uroot \
		--batch --skip-column-names --connect-timeout=3 -e "$1"
}

# The server's state, read in one client run: each run is a process and a
# connection, and a switchover waits on several status rounds. Fills
# "state" with the server's read_only and GTID positions (Corral_*) and the
# fields of SHOW SLAVE STATUS (none when no replication is configured).
declare -A state=()
take_snapshot() {
	local out line
	out=$(MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-} mariadb --protocol=socket --socket="$socket" -uroot \
		--connect-timeout=3 -e 'SELECT @@global.read_only AS Corral_read_only,
  @@global.gtid_binlog_pos AS Corral_binlog_pos,
  @@global.gtid_current_pos AS Corral_current_pos\G
SHOW SLAVE STATUS\G') || return 1
	state=()
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*([A-Za-z_]+):[[:space:]]?(.*)$ ]] || continue
		[[ -v "state[${BASH_REMATCH[1]}]" ]] || state[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
	done <<<"$out"
}

# One field of the last snapshot, empty when it has none.
field() { printf '%s' "${state[$1]:-}"; }

# The sequence number of domain 0 in a GTID list such as "0-1-42,1-2-7".
seq_of() {
	local list=$1 gtid
	IFS=, read -ra gtids <<<"$list"
	for gtid in "${gtids[@]}"; do
		gtid=${gtid// /}
		if [[ $gtid =~ ^0-[0-9]+-([0-9]+)$ ]]; then
			printf '%s' "${BASH_REMATCH[1]}"
			return
		fi
	done
	printf '0'
}

# Replication errors that mean this copy cannot continue from the primary's:
# the primary lacks a GTID this server has (1236), or applying failed on
# rows that should have matched (1062, 1032 and friends).
diverged() { # on the last snapshot
	local io sql
	io=$(field Last_IO_Errno)
	sql=$(field Last_SQL_Errno)
	[[ ${io:-0} == 1236 ]] || [[ ${sql:-0} =~ ^(1007|1008|1032|1050|1051|1062|1146|1396|1952)$ ]]
}

status() {
	local read_only master received applied binlog role seq writable
	take_snapshot || exit 1
	read_only=$(field Corral_read_only)
	master=$(field Master_Host)
	binlog=$(field Corral_binlog_pos)
	applied=$(field Corral_current_pos)
	if [ -n "$master" ]; then
		role=replica
		received=$(field Gtid_IO_Pos)
		seq=$(seq_of "$received")
		local applied_seq
		applied_seq=$(seq_of "$applied")
		((applied_seq > seq)) && seq=$applied_seq
		if diverged; then role=empty; fi
	elif [ -z "$binlog" ] && [ -z "$applied" ]; then
		role=empty
		seq=0
	else
		role=primary
		seq=$(seq_of "$applied")
	fi
	writable=false
	[ "$read_only" = 0 ] && writable=true
	printf '{"role": "%s", "position": [%s], "writable": %s}\n' "$role" "$seq" "$writable"
}

# The application's database and users, made by the first primary in the
# binary log, so that every replica has them; a rebuilt copy, which skips
# that history, makes them itself (ensure_accounts 0: not logged).
accounts_sql() {
	local sql="SET @@SESSION.SQL_LOG_BIN=${1:-1};"
	if [ -n "${MARIADB_REPLICATION_USER:-}" ]; then
		sql+="
CREATE USER IF NOT EXISTS '$(sql_string "$MARIADB_REPLICATION_USER")'@'%' IDENTIFIED BY '$(sql_string "${MARIADB_REPLICATION_PASSWORD:-}")';
GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO '$(sql_string "$MARIADB_REPLICATION_USER")'@'%';"
	fi
	if [ -n "${MARIADB_DATABASE:-}" ]; then
		sql+="
CREATE DATABASE IF NOT EXISTS \`$(sql_name "$MARIADB_DATABASE")\`;"
	fi
	if [ -n "${MARIADB_USER:-}" ]; then
		sql+="
CREATE USER IF NOT EXISTS '$(sql_string "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_string "${MARIADB_PASSWORD:-}")';"
		if [ -n "${MARIADB_DATABASE:-}" ]; then
			sql+="
GRANT ALL ON \`$(sql_name "$MARIADB_DATABASE")\`.* TO '$(sql_string "$MARIADB_USER")'@'%';"
		fi
	fi
	printf '%s' "$sql"
}
ensure_accounts() { local_sql "$(accounts_sql "${1:-1}")"; }

promote() {
	local received take='' waited
	take_snapshot || die "the server does not answer"
	if [ -n "$(field Master_Host)" ]; then
		# Everything received must be applied before this copy takes writes:
		# the last acknowledged commits may still be in the relay log.
		received=$(field Gtid_IO_Pos)
		if [ -n "$received" ]; then
			waited=$(local_sql "SELECT MASTER_GTID_WAIT('$(sql_string "$received")', $WAIT_APPLIED_SECONDS)")
			[ "$waited" = 0 ] || die "the relay log was not applied within ${WAIT_APPLIED_SECONDS}s"
		fi
		take='STOP SLAVE; RESET SLAVE ALL;'
	fi
	# One client run: a switchover's write gap waits on this hook.
	local_sql "$take SET GLOBAL rpl_semi_sync_master_enabled = ON; SET GLOBAL read_only = OFF;
$(accounts_sql)"
	echo "primary: writable, semi-synchronous"
}

demote() {
	# read_only stops every account without READ ONLY ADMIN (the
	# application's) from writing; commits already waiting finish or fail.
	local_sql 'SET GLOBAL read_only = ON; SET GLOBAL rpl_semi_sync_master_enabled = OFF;'
	echo "read-only"
}

# "10.0.0.5" or "10.0.0.5:3307": sets host and port.
split_address() {
	host=$1 port=$PORT
	if [[ $1 == *:* ]]; then host=${1%:*} port=${1##*:}; fi
	[[ $port =~ ^[0-9]+$ ]] || die "not an address: $1"
}

change_master() {
	local host port use_gtid=$2
	split_address "$1"
	local_sql "STOP SLAVE; CHANGE MASTER TO
  MASTER_HOST='$(sql_string "$host")',
  MASTER_PORT=$port,
  MASTER_USER='$(sql_string "${MARIADB_REPLICATION_USER:-}")',
  MASTER_PASSWORD='$(sql_string "${MARIADB_REPLICATION_PASSWORD:-}")',
  MASTER_CONNECT_RETRY=1,
  MASTER_HEARTBEAT_PERIOD=1,
  MASTER_USE_GTID=$use_gtid;
START SLAVE;"
}

follow() {
	local address=${1:?follow ADDRESS}
	local_sql 'SET GLOBAL read_only = ON; SET GLOBAL rpl_semi_sync_master_enabled = OFF;'
	local host port
	split_address "$address"
	take_snapshot || die "the server does not answer"
	if [ "$(field Master_Host)" = "$host" ] && [ "$(field Master_Port)" = "$port" ] \
		&& [ "$(field Slave_IO_Running)" = Yes ] && ! diverged; then
		echo "already following $address"
		return
	fi
	# current_pos: a former primary resumes from its own last transaction,
	# which the new primary must have; if it has not, the copy diverged.
	change_master "$address" current_pos
	local i
	for ((i = 0; i < FOLLOW_WAIT_SECONDS * 2; i++)); do
		take_snapshot || die "the server does not answer"
		if diverged; then
			echo "diverged from $address: $(field Last_IO_Error)$(field Last_SQL_Error)"
			exit 3
		fi
		if [ "$(field Slave_IO_Running)" = Yes ]; then
			echo "following $address"
			return
		fi
		sleep 0.5
	done
	# Still connecting (the primary may be promoting): the status hook will
	# say if it turns out to have diverged.
	echo "following $address (connecting)"
}

SYSTEM_SCHEMAS="'mysql','information_schema','performance_schema','sys'"
app_schemas() { # on the server "$@" connects to
	"$@" --batch --skip-column-names -e \
		"SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ($SYSTEM_SCHEMAS)"
}

rebuild() {
	local address=${1:?rebuild ADDRESS} host port
	split_address "$address"
	local remote=(mariadb --host="$host" --port="$port" -uroot --connect-timeout=5)
	local_sql 'SET GLOBAL read_only = ON; SET GLOBAL rpl_semi_sync_master_enabled = OFF;
STOP SLAVE; RESET SLAVE ALL;'
	local schemas
	schemas=$(MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-} app_schemas "${remote[@]}") ||
		die "could not reach the primary at $address"
	local dump=/tmp/rebuild.sql
	# A consistent snapshot of the application's databases, with the GTID
	# it stands at. The server's own tables (users) stay this server's.
	# shellcheck disable=SC2086 # one word per schema
	MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-} mariadb-dump --host="$host" --port="$port" -uroot \
		--single-transaction --gtid --master-data=1 --routines --events --triggers \
		--databases $schemas >"$dump" ||
		die "could not dump the primary at $address"
	# This copy's own history goes: what remains is the primary's, GTIDs included.
	local schema drop="SET SESSION sql_log_bin = 0;"
	while read -r schema; do
		[ -n "$schema" ] && drop+=" DROP DATABASE \`$(sql_name "$schema")\`;"
	done < <(app_schemas local_sql_client)
	local_sql "$drop RESET MASTER;"
	MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-} mariadb --protocol=socket --socket="$socket" -uroot \
		--init-command='SET SESSION sql_log_bin = 0' <"$dump" ||
		die "could not load the dump"
	rm -f "$dump"
	ensure_accounts 0
	change_master "$address" slave_pos
	echo "rebuilt from $address at $(local_sql 'SELECT @@global.gtid_slave_pos')"
}

local_sql_client() {
	MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-} mariadb --protocol=socket --socket="$socket" -uroot "$@"
}

case "${1:-}" in
status) status ;;
promote) promote ;;
demote) demote ;;
follow) follow "${2:-}" ;;
rebuild) rebuild "${2:-}" ;;
*) die "usage: mariadb-replication status|promote|demote|follow ADDRESS|rebuild ADDRESS" ;;
esac
