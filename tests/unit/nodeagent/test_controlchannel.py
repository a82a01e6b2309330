from typing import Any

import grpc

from nodeagent.controlchannel import ControlChannel, control_targets


def test_agent_ports_default_to_each_servers_port_plus_one() -> None:
    assert control_targets("https://a:6443,https://b:7443", None) == "a:6444,b:7444"
    assert control_targets("https://a:6443", "x:1,y:2") == "x:1,y:2"


class FakeChannel:
    def __init__(self, target: str) -> None:
        self.target = target
        self.closed = False

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return lambda *a, **k: self.target

    unary_stream = stream_unary = stream_stream = unary_unary

    async def close(self) -> None:
        self.closed = True


class Failure(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata())


async def test_moves_on_only_when_the_server_looks_gone() -> None:
    opened: list[FakeChannel] = []

    def open_channel(target: str) -> Any:
        opened.append(FakeChannel(target))
        return opened[-1]

    control = ControlChannel("a:1,b:2", open_channel)
    assert control.Heartbeat() == "a:1"
    # An answer from a live server (refused, not found) is no reason to move.
    assert not await control.failed(Failure(grpc.StatusCode.PERMISSION_DENIED))
    assert await control.failed(Failure(grpc.StatusCode.UNAVAILABLE))
    assert control.Heartbeat() == "b:2" and opened[0].closed
    assert await control.failed(Failure(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert control.target == "a:1"


async def test_a_single_server_is_kept() -> None:
    control = ControlChannel("a:1", lambda t: FakeChannel(t))  # type: ignore[arg-type,return-value]
    assert not await control.failed(Failure(grpc.StatusCode.UNAVAILABLE))
