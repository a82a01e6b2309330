"""Pod addresses of one node, persisted as one file per allocated address.

The layout follows CNI's host-local plugin: ``<dir>/<ip>`` holds the owner's
pod uid. A file is created with link(2) from a complete temporary file, so
an address is taken all at once or not at all, by one owner only, even by
two processes racing on the same directory. The disk is read once, when the
object is made; after that an in-memory index answers, and link(2) still
refuses an address some other process took meanwhile. Allocation continues
after the last address handed out, so a just-freed address is not reused at
once while peers may still hold ARP and conntrack entries for it.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path

from nodeagent.network.cidr import parse_network, pod_addresses

_LAST = "last_reserved_ip"


class IpamExhausted(Exception):
    """Every address of the pod CIDR is taken."""


class Ipam:
    def __init__(self, directory: Path, pod_cidr: str) -> None:
        self.directory = directory
        self.pod_cidr = pod_cidr
        self._network = parse_network(pod_cidr)
        self._candidates = list(pod_addresses(pod_cidr))
        self._position = {ip: n for n, ip in enumerate(self._candidates)}
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        # Leftovers of a write that crashed before its link(2).
        for stale in directory.glob(".tmp-*"):
            stale.unlink(missing_ok=True)
        self._owners = self._read_owners()  # address -> uid, every file on disk
        self._by_uid = {uid: ip for ip, uid in self._owners.items() if self._inside(ip)}
        self._next = self._read_next()

    def _inside(self, ip: str) -> bool:
        return ipaddress.IPv4Address(ip) in self._network

    def _read_owners(self) -> dict[str, str]:
        owners: dict[str, str] = {}
        for entry in os.scandir(self.directory):
            if entry.name.startswith(".") or entry.name == _LAST:
                continue
            try:
                ipaddress.IPv4Address(entry.name)
                owners[entry.name] = Path(entry.path).read_text().strip()
            except (ValueError, OSError):
                # Not an allocation (a stray name), or one released while
                # this listing ran: neither owns an address.
                continue
        return owners

    def _read_next(self) -> int:
        try:
            last = (self.directory / _LAST).read_text().strip()
        except OSError:
            return 0
        return self._position.get(last, -1) + 1

    def allocations(self) -> dict[str, str]:
        """Owner uid -> address, read from disk, for the addresses inside the pod CIDR."""
        with self._lock:
            return {uid: ip for ip, uid in self._read_owners().items() if self._inside(ip)}

    def lookup(self, uid: str) -> str | None:
        with self._lock:
            return self._by_uid.get(uid)

    def allocate(self, uid: str) -> str:
        """The uid's address: the one it already holds, else a free one."""
        if not uid or "\n" in uid:
            raise ValueError(f"invalid pod uid {uid!r}")
        with self._lock:
            held = self._by_uid.get(uid)
            if held is not None:
                return held
            count = len(self._candidates)
            for offset in range(count):
                index = (self._next + offset) % count
                ip = self._candidates[index]
                if ip in self._owners:
                    continue
                if not self._claim(ip, uid):
                    self._owners[ip] = ""  # taken by another process
                    continue
                self._owners[ip] = uid
                self._by_uid[uid] = ip
                self._next = index + 1
                self._write_last(ip)
                return ip
            raise IpamExhausted(f"no free address in {self.pod_cidr} for pod {uid}")

    def release(self, uid: str) -> str | None:
        """Free the uid's addresses; the address freed, or None if it held none."""
        freed: str | None = None
        with self._lock:
            for ip, owner in list(self._owners.items()):
                if owner == uid:
                    (self.directory / ip).unlink(missing_ok=True)
                    del self._owners[ip]
                    freed = ip
            self._by_uid.pop(uid, None)
        return freed

    def _claim(self, ip: str, uid: str) -> bool:
        temporary = self.directory / f".tmp-{os.getpid()}-{threading.get_ident()}-{ip}"
        temporary.write_text(uid + "\n")
        try:
            os.link(temporary, self.directory / ip)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)

    def _write_last(self, ip: str) -> None:
        # Only a hint for where to continue: a torn write just restarts the
        # scan at the beginning, so no rename dance.
        (self.directory / _LAST).write_text(ip)
