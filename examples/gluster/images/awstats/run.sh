#!/bin/sh
# The Awstats sidecar of the varnish pod: every UPDATE_INTERVAL_SECONDS, fold
# the front door's access log into Awstats' history and rebuild the static
# report pages; serve them on :8080 under /awstats/.
set -eu

config="${AWSTATS_CONFIG:-gluster}"
interval="${UPDATE_INTERVAL_SECONDS:-300}"
max_log_bytes="${MAX_LOG_BYTES:-67108864}"
log=/var/log/varnish/access.log
www=/var/lib/awstats/www
awstats=/usr/lib/cgi-bin/awstats.pl
build=/usr/share/awstats/tools/awstats_buildstaticpages.pl

mkdir -p "$www/awstats/icon"
cp -R /usr/share/awstats/icon/. "$www/awstats/icon/"

# Awstats goes straight on from the last line it read only when that line
# does not start the file (an offset of 0 reads as "none"), so the log
# always begins with a comment, which Awstats skips.
# Whoever creates the log owns it: run this sidecar as varnishncsa's user,
# or both as root (the images' default).
header="# the front door's access log, written by varnishncsa, read by Awstats"
start_log() {
    [ -s "$log" ] || echo "$header" >>"$log"
}

# Right after an update, so only what varnishncsa writes in between is lost
# (it appends, -a, so it goes on at the new end); Awstats may also skip the
# first lines from the same second as the last one it read.
trim_log() {
    size=$(wc -c <"$log" 2>/dev/null || echo 0)
    if [ "$size" -gt "$max_log_bytes" ]; then
        echo "$header" >"$log"
    fi
}

update() {
    start_log &&
        "$build" -config="$config" -update -awstatsprog="$awstats" -dir="$www/awstats" >/dev/null &&
        ln -sf "awstats.$config.html" "$www/awstats/index.html" &&
        trim_log
}

update || echo "awstats: update failed; next try in ${interval}s" >&2
(
    while sleep "$interval"; do
        update || echo "awstats: update failed; next try in ${interval}s" >&2
    done
) &

exec busybox httpd -f -p 8080 -h "$www"
