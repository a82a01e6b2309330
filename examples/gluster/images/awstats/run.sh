#!/bin/sh
# The Awstats sidecar of the varnish pod: every UPDATE_INTERVAL_SECONDS, fold
# the front door's access log into Awstats' history and rebuild the static
# report pages; serve them on :8080 under /awstats/.
set -eu

config="${AWSTATS_CONFIG:-gluster}"
interval="${UPDATE_INTERVAL_SECONDS:-300}"
www=/var/lib/awstats/www
awstats=/usr/lib/cgi-bin/awstats.pl
build=/usr/share/awstats/tools/awstats_buildstaticpages.pl

mkdir -p "$www/awstats/icon"
cp -R /usr/share/awstats/icon/. "$www/awstats/icon/"

update() {
    "$build" -config="$config" -update -awstatsprog="$awstats" -dir="$www/awstats" >/dev/null &&
        ln -sf "awstats.$config.html" "$www/awstats/index.html"
}

update || echo "awstats: update failed; next try in ${interval}s" >&2
(
    while sleep "$interval"; do
        update || echo "awstats: update failed; next try in ${interval}s" >&2
    done
) &

exec busybox httpd -f -p 8080 -h "$www"
