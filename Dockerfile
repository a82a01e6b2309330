# The corral image: etcd, the control plane and the node agent, one program.
#
# No registry is reachable where corral is developed, so the base defaults
# to the Debian bookworm image examples/gluster/build.py makes with
# debootstrap (`python examples/gluster/build.py --only base`, tag from
# `--print-tags`). Where a registry is available, the one-line switch is:
#   docker build --build-arg BASE=debian:bookworm-slim -t corral.local/corral:dev .
ARG BASE=corral.local/gluster/base:latest
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv etcd-server \
      iproute2 nftables ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY corral /src/corral
COPY controlplane /src/controlplane
COPY scheduler /src/scheduler
COPY nodeagent /src/nodeagent
RUN python3 -m venv /opt/corral && /opt/corral/bin/pip install --no-cache-dir /src && rm -rf /src
ENTRYPOINT ["/opt/corral/bin/corral"]
