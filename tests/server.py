"""A real flexearn server in a subprocess, on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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
    with server_process(database_url, master_key, *args, env=env, log=log) as (_, base):
        yield base


@contextmanager
def server_process(
    database_url: str,
    master_key: str,
    *args: str,
    env: dict[str, str] | None = None,
    log: IO[bytes] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`running_server`, yielding the process too: it leads a session of its own (its granian
    workers with it), so `os.killpg(proc.pid, SIGKILL)` takes the whole server down at once."""
    port = free_port()
    env = {
        **os.environ,
        "FLEXEARN_MASTER_KEY": master_key,
        "FLEXEARN_ADMIN_TOKEN": ADMIN_TOKEN,
        **(env or {}),
    }
    log = log or tempfile.TemporaryFile()  # noqa: SIM115 - read back in the finally below
    proc = subprocess.Popen(
        [FLEXEARN, "serve", "--port", str(port), "--db", database_url, "--no-scheduler", "--migrate", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
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
        yield proc, base
    finally:
        _stop(proc)
        output = _read(log)
        if "Traceback" in output:  # shown by pytest with the failing test
            print(f"--- flexearn serve on port {port} logged errors ---\n{output}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's session, SIGKILL if it lingers (its workers too)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _read(log: Any) -> str:
    log.seek(0)
    return str(log.read().decode(errors="replace"))


def full_ledger_check(url: str, timeout: float = 1800) -> tuple[int, str, float]:
    """`flexearn ledger check --full` on `url`: its exit code, what it printed, seconds taken."""
    started = time.monotonic()
    done = subprocess.run(
        [FLEXEARN, "ledger", "check", "--full", "--db", url],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, (done.stdout + done.stderr).strip(), time.monotonic() - started
