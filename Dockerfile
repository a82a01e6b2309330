# The corral image: etcd, the control plane and the node agent, one program.
#
#   docker build -t corral.local/corral:dev .
#
# Without a registry, base it on the Debian bookworm image
# examples/gluster/build.py makes with debootstrap (`--only base`; its tag is
# the content tag `--print-tags` prints, there is no :latest):
#   docker build --build-arg BASE=corral.local/gluster/base:<tag> ...
# Behind a TLS-intercepting proxy, EXTRA_CA_CERTS takes the proxy's CA
# certificates (PEM text) so pip can reach PyPI; they stay in the image.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG EXTRA_CA_CERTS=
# busybox-static: the agent builds its pod infra (pause) image from it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv etcd-server \
      iproute2 nftables ca-certificates busybox-static \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/extra.crt \
      && update-ca-certificates; \
    fi
COPY pyproject.toml README.md constraints.txt /src/
COPY corral /src/corral
COPY corralctl /src/corralctl
COPY controlplane /src/controlplane
COPY scheduler /src/scheduler
COPY nodeagent /src/nodeagent
# pip's own CA list would not include EXTRA_CA_CERTS; the system's does.
RUN python3 -m venv /opt/corral \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/corral/bin/pip install --no-cache-dir \
      --constraint /src/constraints.txt /src \
 && rm -rf /src
# On PATH too, for `docker-compose exec apiserver corral ...`.
ENV PATH=/opt/corral/bin:$PATH
ENTRYPOINT ["/opt/corral/bin/corral"]
