"""The log store units corral install master writes: systemd accepts them; stunnel's settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

from corralctl import logstoreunits
from corralctl.clusterpki import ClusterPki
from corralctl.units import Layout, agent_unit


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    layout = Layout(etc_dir=tmp_path / "etc", state_dir=tmp_path / "state", unit_dir=tmp_path)
    layout.etc_dir.mkdir()
    cluster_pki = ClusterPki(tmp_path / "pki")
    cluster_pki.ensure(["master.example"])
    written = logstoreunits.log_store_units(layout, cluster_pki, ["master.example"], 19532)
    assert set(written) == {logstoreunits.STORE_UNIT, logstoreunits.TLS_UNIT}
    paths = []
    for name, text in written.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    config = (layout.etc_dir / "log-store-stunnel.conf").read_text()
    assert "accept = 19532" in config and "connect = 127.0.0.1:19531" in config
    assert "requireCert = yes" in config and f"CAfile = {cluster_pki.ca_cert}" in config
    assert "--listen-http=127.0.0.1:19531" in written[logstoreunits.STORE_UNIT]


def test_a_minions_agent_ships_to_the_masters_store_by_default() -> None:
    url = logstoreunits.agent_store_url("https://10.0.0.1:6443", "")
    assert url == "https://10.0.0.1:19532"
    assert logstoreunits.agent_store_url("https://10.0.0.1:6443", "none") == ""
    unit = agent_unit(
        Layout(), server="https://m:6443", node_name="n1", docker_host="unix:///d.sock",
        pod_network="bridge", log_store=url,
    )  # fmt: skip
    assert f"--log-store {url}" in unit
