"""CACHE_URL: which cache every app server shares (ctctrack/settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from ctctrack.settings import cache_from_url


def test_unset_is_each_process_own_memory():
    assert cache_from_url("") == {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/2", "redis://:s3cret@cache.internal:6380/0", "rediss://cache:6379/1"],
)
def test_a_redis_url_is_django_redis_cache_given_the_whole_url(url):
    """redis-py reads the password, database number and TLS from the URL itself."""
    assert cache_from_url(url, key_prefix="clinic") == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "clinic",
    }


def test_a_memcached_url_is_pymemcache_at_host_and_port():
    assert cache_from_url("memcached://10.0.0.5:11211") == {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": "10.0.0.5:11211",
        "KEY_PREFIX": "",
    }


@pytest.mark.parametrize(
    "url", ["memcache://host:11211", "http://cache:80", "redis:///0", "localhost:6379"]
)
def test_an_unsupported_url_is_refused_naming_what_works(url):
    with pytest.raises(ImproperlyConfigured, match="redis://host:port/db"):
        cache_from_url(url)


def test_the_server_refuses_to_start_with_an_unsupported_cache_url():
    env = {**os.environ, "DEBUG": "True", "CACHE_URL": "file:///tmp/cache"}

    done = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )

    assert done.returncode != 0
    assert "CACHE_URL scheme 'file'" in done.stderr


@pytest.mark.parametrize(
    ("url", "client_class"),
    [
        ("redis://127.0.0.1:6379/0", "RedisCacheClient"),
        ("memcached://127.0.0.1:11211", "HashClient"),
    ],
)
def test_each_backend_loads_with_its_pinned_client(url, client_class, settings):
    """Both client libraries are installed: a production CACHE_URL does not fail at import.

    Building the client imports it (`redis`, `pymemcache`); it connects only when used.
    """
    settings.CACHES = {"default": cache_from_url(url)}

    client = caches["default"]._cache

    assert type(client).__name__ == client_class
