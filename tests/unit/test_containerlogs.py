"""The agent's container log rotation flags: kubelet's defaults, Docker's LogConfig."""

from __future__ import annotations

import pytest

from nodeagent.containerlogs import ContainerLogLimits, log_limits
from nodeagent.main import config_from, parser


def test_defaults_are_kubelets_10_mib_and_5_files() -> None:
    config = ContainerLogLimits().docker_log_config()
    assert config == {"Type": "json-file", "Config": {"max-size": "10485760", "max-file": "5"}}


def test_flags_reach_the_agent_config() -> None:
    args = parser().parse_args(
        [
            "--server",
            "http://127.0.0.1:1",
            "--container-log-max-size",
            "1Mi",
            "--container-log-max-files",
            "3",
            "--log-store",
            "http://127.0.0.1:19532",
        ]
    )
    config = config_from(args)
    assert config.container_log_limits == ContainerLogLimits(1024 * 1024, 3)
    assert config.log_store == "http://127.0.0.1:19532"


@pytest.mark.parametrize(("size", "files"), [("lots", 5), ("10", 5), ("10Mi", 1)])
def test_invalid_limits_are_refused(size: str, files: int) -> None:
    with pytest.raises(ValueError, match="--container-log-max"):
        log_limits(size, files)
