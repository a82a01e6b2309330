"""``corral up`` and ``corral down``: flags checked before anything starts, stop order, pid files.

Nothing here starts a process of corral's: the flag checks run on parsed
arguments, the supervisor on stand-in children.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corralctl import down, localcluster, up
from corralctl.main import main, parser
from corralctl.supervisor import Supervisor


def parse(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["up", *argv])


def problem(*argv: str) -> str | None:
    return up.validate(parse(*argv))


def test_defaults_are_todays_single_agent() -> None:
    args = parse()
    assert (args.simulated_hosts, args.load_images, args.publish, args.wait) == (0, [], [], False)
    assert args.wait_timeout == 900
    assert up.validate(args) is None
    assert args.published == []


def test_publish_needs_simulated_hosts() -> None:
    found = problem("--publish", "8080:30080")
    assert found is not None and found.startswith("--publish needs --simulated-hosts")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8080", "expected LOCAL:NODEPORT"),
        ("web:30080", "expected LOCAL:NODEPORT"),
        ("70000:30080", "expected LOCAL:NODEPORT"),
        ("8080:80", "80 is not a node port (30000-32767)"),
    ],
)
def test_publish_must_name_a_local_port_and_a_node_port(value: str, message: str) -> None:
    found = problem("--simulated-hosts", "3", "--publish", value)
    assert found is not None and message in found, found


def test_good_flags_are_parsed_once() -> None:
    args = parse(
        "--simulated-hosts", "3", "--publish", "8080:30080", "--publish", "8081:30081",
        "--apply", "x.json", "--wait", "--wait-timeout", "60",
    )  # fmt: skip
    assert up.validate(args) is None
    assert args.published == [(8080, 30080), (8081, 30081)]
    assert problem("--simulated-hosts", "2", "--publish", "1:30080", "--publish", "1:30081") == (
        "--publish: each LOCAL port once"
    )


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (("--simulated-hosts", "2", "--no-agent"), "--simulated-hosts runs node agents"),
        (("--simulated-hosts", "2", "--pod-network", "none"), "--simulated-hosts needs"),
        (("--simulated-hosts", "-1"), "--simulated-hosts: between"),
        (("--wait",), "--wait waits for what --apply creates"),
        (("--apply", "x.json", "--wait", "--wait-timeout", "0"), "--wait-timeout"),
        (("--load-images", "/nonexistent/images.tar"), "--load-images /nonexistent"),
        (("--no-agent", "--load-images", "x.tar"), "--load-images loads into the nodes'"),
    ],
)
def test_contradictions_are_clear_errors(argv: tuple[str, ...], start: str) -> None:
    found = problem(*argv)
    assert found is not None and found.startswith(start), found


def test_a_bad_flag_stops_corral_up_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code = main(["up", "--data-dir", str(data), "--publish", "8080:30080"])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: --publish needs --simulated-hosts")
    assert not data.exists()


class Child:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_deferred_cleanups_run_between_the_children_around_them() -> None:
    log: list[str] = []
    supervisor = Supervisor()
    supervisor.cleanups.append(lambda: log.append("cleanup last"))
    supervisor.defer(lambda: log.append("deferred first, runs last of the deferred"))
    supervisor.add(Child("etcd", log))  # type: ignore[arg-type]
    supervisor.add(Child("dockerd", log))  # type: ignore[arg-type]
    supervisor.defer(lambda: log.append("remove hosts"))
    supervisor.defer(lambda: log.append("remove containers"))

    def broken() -> None:
        raise RuntimeError("docker went away")

    supervisor.defer(broken)
    supervisor.add(Child("agent", log))  # type: ignore[arg-type]
    supervisor.stop_all()
    assert log == [
        "stop agent",
        "remove containers",
        "remove hosts",
        "stop dockerd",
        "stop etcd",
        "deferred first, runs last of the deferred",
        "cleanup last",
    ]


def test_a_stale_pid_file_is_not_a_running_corral_up(tmp_path: Path) -> None:
    (tmp_path / localcluster.PID_FILE).write_text(f"{os.getpid()}\n")
    assert localcluster.running_up(tmp_path) is None
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            (tmp_path / localcluster.PID_FILE).write_text(f"{other.pid}\n")
            # Alive, but not corral up: never signalled.
            assert localcluster.running_up(tmp_path) is None
        finally:
            other.kill()


def test_down_with_nothing_to_do_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["down", "--data-dir", str(tmp_path / "never-used")]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_down_purges_a_data_dir_without_mounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    localcluster.write_state(data, {"nodes": [], "docker_host": "", "simulated_prefix": None})
    assert localcluster.read_state(data)["nodes"] == []
    assert main(["down", "--data-dir", str(data), "--purge"]) == 0
    assert not data.exists()
    assert f"deleted {data}" in capsys.readouterr().out


def test_up_refuses_while_an_earlier_runs_processes_are_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, localcluster.ENV_MARKER: str(data)}
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    with subprocess.Popen(sleeper, env=env) as orphan:
        try:
            assert set(localcluster.leftover_processes(data)) == {orphan.pid}
            assert main(["up", "--data-dir", str(data), "--no-agent"]) == 1
            assert f"(pids {orphan.pid}); remove them first" in capsys.readouterr().err
            assert not (data / localcluster.PID_FILE).exists()
        finally:
            orphan.kill()


def test_agents_on_simulated_hosts_are_found_by_their_namespace_flag() -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)", "--network-netns", "crl-zz-0"]
    with subprocess.Popen(argv) as agent:
        try:
            # Until the child has exec'd, /proc shows the parent's command line.
            deadline = time.monotonic() + 10
            while (
                agent.pid not in localcluster.agents_on_hosts("crl-zz")
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            assert agent.pid in localcluster.agents_on_hosts("crl-zz")
            assert agent.pid not in localcluster.agents_on_hosts("crl-z")
        finally:
            agent.kill()


def test_the_testbed_the_cli_runs_is_the_public_entry_point_and_it_runs() -> None:
    # Only argument checks: making hosts needs root and namespaces.
    assert down.TESTBED == "nodeagent.testbed"
    refused = subprocess.run(
        [sys.executable, "-m", down.TESTBED, "down", "--prefix", "sim"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "crl-" in refused.stderr
