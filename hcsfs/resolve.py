"""From a URL or path (and storage options) to the :class:`~hcsfs.source.Source` of a plate."""

from __future__ import annotations

import os
from typing import Any

import fsspec
from fsspec.core import split_protocol

from hcsfs.source import FsspecSource, LocalSource, Source

__all__ = ["is_archive_path", "make_source", "split_hcs_url"]

ARCHIVE_SUFFIXES = (".ozx", ".zip")


def is_archive_path(path: str) -> bool:
    """True when ``path`` names a single-file (zip) plate."""
    return path.rstrip("/").lower().endswith(ARCHIVE_SUFFIXES)


def split_hcs_url(url: str) -> str:
    """Drop a leading ``hcs::`` or ``hcs://`` so ``url`` names the target."""
    for prefix in ("hcs::", "hcs://"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


def make_source(
    fo: str,
    *,
    target_protocol: str | None = None,
    target_options: dict[str, Any] | None = None,
    fs: fsspec.AbstractFileSystem | None = None,
    read_only: bool = True,
    loop: Any = None,
    asynchronous: bool = False,
) -> Source:
    """Build the source for the plate at ``fo``.

    ``fo`` may be a local path, a URL (``s3://bucket/plate.ome.zarr``), or a path on
    ``target_protocol`` / ``fs``. Paths ending in ``.ozx`` (or ``.zip``) open the
    archive in place.
    """
    options = dict(target_options or {})
    if fs is None:
        protocol, path = split_protocol(fo)
        protocol = target_protocol or protocol
        if protocol in (None, "file", "local") and not _is_chained(fo):
            local = os.path.abspath(os.path.expanduser(path))
            if is_archive_path(local) and not os.path.isdir(local):
                from hcsfs.ozx_source import OzxSource, local_fetcher

                return OzxSource(local_fetcher(local), url=local)
            return LocalSource(local, read_only=read_only)
        if _is_chained(fo):
            fs, path = fsspec.core.url_to_fs(fo, **options)
        else:
            if asynchronous:
                options.setdefault("asynchronous", True)
            if loop is not None and _is_async_class(protocol):
                options.setdefault("loop", loop)
            if protocol in ("s3", "s3a"):
                _widen_s3_pool(options)
            fs = fsspec.filesystem(protocol, **options)
            path = fs._strip_protocol(fo)
    else:
        path = fs._strip_protocol(fo)
    if is_archive_path(path):
        from hcsfs.ozx_source import OzxSource, fsspec_fetcher

        return OzxSource(fsspec_fetcher(fs, path), url=fs.unstrip_protocol(path))
    return FsspecSource(fs, path, read_only=read_only)


S3_POOL_CONNECTIONS = 64


def _widen_s3_pool(options: dict[str, Any]) -> None:
    """botocore settings for plates, unless the caller set them.

    As many requests in flight as the source allows (botocore's default pool is 10),
    bounded retries in botocore's standard mode, and timeouts, so a persistent fault
    fails in seconds rather than minutes (s3fs adds its own retry loop on top).
    """
    config = dict(options.get("config_kwargs") or {})
    config.setdefault("max_pool_connections", S3_POOL_CONNECTIONS)
    config.setdefault("retries", {"mode": "standard", "max_attempts": 3})
    config.setdefault("connect_timeout", 10)
    config.setdefault("read_timeout", 30)
    options["config_kwargs"] = config


def _is_chained(url: str) -> bool:
    return "::" in url


def _is_async_class(protocol: str | None) -> bool:
    if protocol is None:
        return False
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError):
        return False
    return bool(getattr(cls, "async_impl", False))
