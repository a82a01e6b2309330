"""The simulated-hosts CLI refuses what would reach beyond loopback and crl-* namespaces."""

from __future__ import annotations

import pytest

from nodeagent import testbed


@pytest.mark.parametrize(
    "argv",
    [
        ["forward", "--netns", "crl-sim-0", "--listen", "0.0.0.0:8080", "--to", "10.0.0.1:80"],
        ["forward", "--netns", "crl-sim-0", "--listen", "192.168.1.5:80", "--to", "10.0.0.1:80"],
        ["forward", "--netns", "sim-0", "--listen", "127.0.0.1:8080", "--to", "10.0.0.1:80"],
        ["forward", "--netns", "crl-sim-0", "--listen", "127.0.0.1:8080", "--to", "host:80"],
        ["down", "--prefix", "sim"],
        ["up", "--hosts", "2", "--prefix", "crl-"],
    ],
)
def test_the_testbed_cli_refuses_what_would_leave_its_namespaces(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        testbed.parser().parse_args(argv)


def test_the_testbed_cli_takes_loopback_and_crl_names() -> None:
    args = testbed.parser().parse_args(
        ["forward", "--netns", "crl-sim-0", "--listen", "127.0.0.1:8080", "--to", "1.2.3.4:30080"]
    )
    assert (args.netns, args.listen, args.to) == (
        ["crl-sim-0"],
        ("127.0.0.1", 8080),
        [("1.2.3.4", 30080)],
    )


def test_the_relay_takes_a_route_per_host_in_order() -> None:
    args = testbed.parser().parse_args(
        [
            "forward",
            "--listen",
            "127.0.0.1:8080",
            "--netns",
            "crl-sim-0",
            "--to",
            "10.0.0.1:30080",
            "--netns",
            "crl-sim-1",
            "--to",
            "10.0.0.2:30080",
        ]
    )
    assert list(zip(args.netns, args.to, strict=True)) == [
        ("crl-sim-0", ("10.0.0.1", 30080)),
        ("crl-sim-1", ("10.0.0.2", 30080)),
    ]


def test_the_relay_refuses_a_namespace_without_its_address() -> None:
    with pytest.raises(SystemExit):
        testbed.main(
            [
                "forward",
                "--listen",
                "127.0.0.1:8080",
                "--netns",
                "crl-sim-0",
                "--netns",
                "crl-sim-1",
                "--to",
                "10.0.0.2:30080",
            ]
        )
