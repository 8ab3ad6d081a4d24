"""CACHE_URL: which cache every app server shares (ctctrack/settings.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ctctrack.settings import cache_from_url


def test_unset_is_each_process_own_memory():
    assert cache_from_url("") == {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "OPTIONS": {"MAX_ENTRIES": 5000},
    }


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/2", "redis://:s3cret@cache.internal:6380/0", "rediss://cache:6379/1"],
)
def test_a_redis_url_is_django_redis_cache_given_the_whole_url(url):
    """redis-py reads the password, database number and TLS from the URL itself."""
    config = cache_from_url(url, key_prefix="clinic")

    assert config["BACKEND"] == "ctctrack.cache.RedisCache"
    assert issubclass(import_string(config["BACKEND"]), RedisCache)
    assert (config["LOCATION"], config["KEY_PREFIX"]) == (url, "clinic")


def test_a_memcached_url_is_pymemcache_at_host_and_port():
    config = cache_from_url("memcached://10.0.0.5:11211")

    assert config["BACKEND"] == "django.core.cache.backends.memcached.PyMemcacheCache"
    assert (config["LOCATION"], config["KEY_PREFIX"]) == ("10.0.0.5:11211", "")
    assert config["OPTIONS"]["ignore_exc"] is True  # a cache that is down reads as a miss


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


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["redis", "memcached"])
def test_with_the_cache_down_a_chart_is_still_drawn(scheme, settings, client, nurse, draw):
    settings.CACHES = {"default": cache_from_url(f"{scheme}://127.0.0.1:{_closed_port()}/0")}
    client.force_login(nurse)

    r = client.get(f"/patients/{draw.patient_id}/chart.svg")

    assert r.status_code == 200
    assert b"CTCs per 7.5 mL" in r.content
