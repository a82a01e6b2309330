vcl 4.1;

# corral's varnish image: a placeholder. Mount the real VCL at
# /etc/varnish/default.vcl (examples/gluster.json does, from a ConfigMap).
backend default {
    .host = "127.0.0.1";
    .port = "8080";
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
