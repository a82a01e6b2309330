"""Running nft(8) in the node's namespace: one ``nft -f -`` call is one kernel transaction."""

from __future__ import annotations

import asyncio

# The table corral owns: `table ip corral`. Another local cluster whose pod
# network shares the namespace has one of its own (NetworkConfig.nft_table).
TABLE = "corral"


class NftError(Exception):
    def __init__(self, message: str, script: str = "") -> None:
        super().__init__(message)
        self.script = script


def nft_command(netns: str | None, *args: str) -> list[str]:
    # nsenter joins only the network namespace; `ip netns exec` would also
    # remount /sys in a new mount namespace, which costs time and is not needed.
    prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    return [*prefix, "nft", *args]


async def run_nft(netns: str | None, script: str) -> None:
    """Apply ``script`` atomically: nft commits all of it or none of it."""
    process = await asyncio.create_subprocess_exec(
        *nft_command(netns, "-f", "-"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate(script.encode())
    if process.returncode != 0:
        raise NftError(stderr.decode(errors="replace").strip()[-4000:], script)


async def nft_output(netns: str | None, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *nft_command(netns, *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise NftError(stderr.decode(errors="replace").strip())
    return stdout.decode()


async def delete_table(netns: str | None, table: str = TABLE) -> None:
    """Remove corral's table if present (adding it first makes the delete never fail)."""
    await run_nft(netns, f"add table ip {table}\ndelete table ip {table}\n")
