#!/usr/bin/env bash
# Provisioning for vagrant/Vagrantfile: the packages an ostree host lacks,
# then corral's own installer, exactly as tests/e2e/test_install.py runs it.
#   provision.sh master MASTER_IP
#   provision.sh minion MASTER_IP
set -euo pipefail
role=$1 master_ip=$2
src=/var/srv/corral
join=$src/.vagrant-join

packages=(python3 etcd docker)
[[ $role == minion ]] && packages=(python3 docker nftables iproute)
if command -v rpm-ostree >/dev/null; then
  # Layered on the ostree image, applied live (no reboot).
  rpm-ostree install --idempotent --apply-live --allow-inactive "${packages[@]}"
elif command -v apt-get >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq python3-venv etcd-server docker.io nftables iproute2
fi
systemctl enable --now docker

# The installer itself runs from the synced source with a throwaway venv;
# it installs corral into /var/lib/corral/venv.
python3 -m venv /var/tmp/corral-installer
/var/tmp/corral-installer/bin/pip install -q "$src"
corral=/var/tmp/corral-installer/bin/corral

if [[ $role == master ]]; then
  "$corral" install master --advertise-address "$master_ip" --san "$master_ip"
  install -d -m 0700 "$join"
  until /var/lib/corral/venv/bin/corral get nodes --kubeconfig /etc/corral/admin.kubeconfig >/dev/null 2>&1; do
    sleep 2
  done
  /var/lib/corral/venv/bin/corral token create --ttl 2h --kubeconfig /etc/corral/admin.kubeconfig \
    > "$join/token"
  cp /etc/corral/pki/ca.crt "$join/ca.crt"
else
  "$corral" install minion --server "https://$master_ip:6443" \
    --ca-file "$join/ca.crt" --token "$(cat "$join/token")"
fi
