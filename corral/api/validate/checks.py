"""Memoised forms of the string checks in ``corral.api.validation``.

Every write is validated, and the same label keys, container names and
environment variable names come back again and again, so each answer is
kept (as an immutable tuple of messages) in a bounded cache.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from corral.api import validation

_CACHE_SIZE = 8192
# Longer strings are never valid names, and caching them would let a few
# large requests pin a lot of memory.
_MAX_CACHED_LENGTH = 256

Check = Callable[[str], tuple[str, ...]]


def _memo(fn: Callable[[str], list[str]]) -> Check:
    @lru_cache(maxsize=_CACHE_SIZE)
    def cached(value: str) -> tuple[str, ...]:
        return tuple(fn(value))

    def check(value: str) -> tuple[str, ...]:
        if len(value) > _MAX_CACHED_LENGTH:
            return tuple(fn(value))
        return cached(value)

    return check


is_config_map_key = _memo(validation.is_config_map_key)
is_dns1035_label = _memo(validation.is_dns1035_label)
is_dns1123_label = _memo(validation.is_dns1123_label)
is_dns1123_subdomain = _memo(validation.is_dns1123_subdomain)
is_env_var_name = _memo(validation.is_env_var_name)
is_ip_address = _memo(validation.is_ip_address)
is_qualified_name = _memo(validation.is_qualified_name)
is_valid_label_value = _memo(validation.is_valid_label_value)
is_valid_port_name = _memo(validation.is_valid_port_name)
