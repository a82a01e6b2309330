"""``corral up``'s children: restarted with backoff when one exits, stopped in reverse order.

Cleanups for what a child leaves behind run once it has stopped; those
deferred mid-start run between the children around them (see
``Supervisor.defer``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from corral.backoff import jittered
from corralctl import processes

# A child that crashes is restarted after this long, doubling to the cap,
# so a persistent failure does not spin.
_RESTART_BACKOFF = (0.5, 30.0)


class Supervisor:
    def __init__(self) -> None:
        self.children: list[processes.ManagedProcess] = []
        # Run after every child has stopped, for what a child leaves behind.
        self.cleanups: list[Callable[[], None]] = []
        # (how many children there were, cleanup): see defer.
        self._deferred: list[tuple[int, Callable[[], None]]] = []
        self._backoff: dict[str, float] = {}
        self._next_start: dict[str, float] = {}
        self.stopping = False

    def add(self, child: processes.ManagedProcess) -> None:
        self.children.append(child)

    def defer(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` on stopping, once the children added after now have stopped.

        The children added before still run then: the nodes' containers are
        removed while the Docker they run in still answers.
        """
        self._deferred.append((len(self.children), cleanup))

    def _run_deferred(self, position: int) -> None:
        for at, cleanup in reversed(self._deferred):
            if at == position:
                _quietly(cleanup)

    def stop_all(self) -> None:
        for index in reversed(range(len(self.children))):
            self._run_deferred(index + 1)
            self.children[index].stop()
        self._run_deferred(0)
        self._deferred.clear()
        for cleanup in self.cleanups:
            cleanup()

    def tend(self) -> None:
        """Restart children that exited, with backoff."""
        now = time.monotonic()
        for child in self.children:
            if child.running() or self.stopping:
                continue
            if now < self._next_start.get(child.name, 0.0):
                continue
            delay = self._backoff.get(child.name, _RESTART_BACKOFF[0])
            code = child.process.returncode if child.process else None
            print(
                f"corral: {child.name} exited (code {code}); restarting; log: {child.log_path}",
                file=sys.stderr,
            )
            child.start()
            self._backoff[child.name] = min(delay * 2, _RESTART_BACKOFF[1])
            # Jittered: children that crashed together (etcd went away) do
            # not come back in lockstep.
            self._next_start[child.name] = now + jittered(delay)


def _quietly(cleanup: Callable[[], None]) -> None:
    # One failed cleanup must not keep the others from running.
    try:
        cleanup()
    except Exception as error:
        print(f"corral: cleanup failed: {error}", file=sys.stderr, flush=True)
