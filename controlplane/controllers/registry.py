"""The controllers the controller manager can run, by name."""

from __future__ import annotations

from collections.abc import Callable

from controlplane.controllers.base import Context, Controller

ControllerFactory = Callable[[Context], Controller]

CONTROLLERS: dict[str, ControllerFactory] = {}
