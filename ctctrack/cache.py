"""The shared chart cache: when it is down or slow, a chart is drawn again, not refused.

A cache only saves work, so losing it must cost time, never an error page. For
memcached, pymemcache does this itself (`ignore_exc` in the settings); Django's
Redis backend raises instead, hence `RedisCache` below. Each failure is logged
as a warning (the key is not: it names a patient's record id, the error's text
is withheld by the project's log filter anyway).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class RedisCache(DjangoRedisCache):
    """Django's RedisCache, reading a failed get as a miss and skipping a failed set."""

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        try:
            return super().get(key, default, version)
        except RedisError as exc:
            logger.warning("Cache unavailable (%s): read as a miss", type(exc).__name__)
            return default

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        try:
            super().set(key, value, timeout, version)
        except RedisError as exc:
            logger.warning("Cache unavailable (%s): not stored", type(exc).__name__)
