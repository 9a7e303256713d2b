"""How the HTTP server holds connections: idle or slow clients cannot lock new ones out.

granian (2.8) accepts a connection only while it holds one of `backpressure` permits per worker
process, and keeps the permit until the connection closes; further connections wait in the
kernel's listen queue (`backlog`). Its defaults (backlog 1024, backpressure backlog/workers) with
HTTP mode `auto` let about a thousand connections that send nothing lock every new client out for
good: `auto` first reads the 24 bytes that tell HTTP/2's preface from HTTP/1 (hyper-util's
`read_version`) with no timeout at all, so such a connection keeps its permit forever. Hence:

- HTTP/1.1 only: hyper's HTTP/1 `header_read_timeout` then runs from a connection's opening and
  again from the end of each answer, so one setting (FLEXEARN_HEADER_TIMEOUT) bounds a slow header,
  a connection that never sends one, and an idle keep-alive connection. (Cleartext HTTP/2 needs
  prior knowledge, which the exchanges' SDKs do not use; TLS, where HTTP/2 is negotiated, is the
  load balancer's.)
- Many permits per worker (FLEXEARN_MAX_CONNECTIONS), within the process's open-files limit,
  whose soft value is raised to its hard one first (systemd's default soft limit is 1024).
- A listen queue of `BACKLOG` (the kernel caps it at net.core.somaxconn).
- Request heads of at most `MAX_HEAD_BYTES` (hyper answers 431 past it), so an idle connection
  holds a few kilobytes, not granian's default 400 KB buffer.

Bodies are bounded in the application (`api/limits.py`).
"""

from __future__ import annotations

import resource
from typing import Any

from granian.constants import HTTPModes
from granian.http import HTTP1Settings

from flexearn.config import Settings

BACKLOG = 4096
MAX_HEAD_BYTES = 32 * 1024  # request line and headers; nginx's default allows 4 × 8 KB
# Descriptors a worker keeps for itself (database pool, logs, metrics files) out of its limit.
RESERVED_FILES = 256


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it); the new
    soft limit. Raising it needs no privilege; if the system refuses, the current one stays."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connections_per_worker(settings: Settings, open_files: int) -> int:
    """FLEXEARN_MAX_CONNECTIONS, or fewer if the open-files limit cannot hold them."""
    return max(16, min(settings.max_connections, open_files - RESERVED_FILES))


def server_options(settings: Settings) -> dict[str, Any]:
    """granian's connection settings for `serve` and `demo` (raises the open-files limit)."""
    return {
        "http": HTTPModes.http1,
        "backlog": BACKLOG,
        "backpressure": connections_per_worker(settings, raise_open_files_limit()),
        "http1_settings": HTTP1Settings(
            header_read_timeout=round(settings.header_timeout * 1000),  # milliseconds
            keep_alive=True,
            max_buffer_size=MAX_HEAD_BYTES,
        ),
    }
