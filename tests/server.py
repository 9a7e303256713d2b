"""A real flexearn server in a subprocess, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FLEXEARN = shutil.which("flexearn", path=str(Path(sys.executable).parent)) or "flexearn"
# The admin bearer token every test server is started with (`serve` refuses to start without one).
ADMIN_TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    database_url: str,
    master_key: str,
    *args: str,
    env: dict[str, str] | None = None,
    log: IO[bytes] | None = None,
) -> Iterator[str]:
    """Start `flexearn serve` and yield its base URL once it answers; stop it afterwards.

    `env` adds to (or overrides) the environment: FLEXEARN_ADMIN_TOKEN is ADMIN_TOKEN by default.
    `log` receives what the server writes (its JSON log lines); a temporary file by default.
    """
    port = free_port()
    env = {
        **os.environ,
        "FLEXEARN_MASTER_KEY": master_key,
        "FLEXEARN_ADMIN_TOKEN": ADMIN_TOKEN,
        **(env or {}),
    }
    log = log or tempfile.TemporaryFile()  # noqa: SIM115 - read back in the finally below
    proc = subprocess.Popen(
        [FLEXEARN, "serve", "--port", str(port), "--db", database_url, "--no-scheduler", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v5/public/time", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"flexearn serve did not start:\n{_read(log)}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        output = _read(log)
        if "Traceback" in output:  # shown by pytest with the failing test
            print(f"--- flexearn serve on port {port} logged errors ---\n{output}")


def _read(log: Any) -> str:
    log.seek(0)
    return str(log.read().decode(errors="replace"))
