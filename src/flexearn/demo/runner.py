"""Run the sandbox: seed the world, serve HTTP (the app `flexearn serve` runs) and settle hours."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from granian import Granian
from granian.constants import Interfaces
from granian.log import LogLevels

from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api import listener
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.demo import keyfile, restart
from flexearn.demo.banner import banner, hour_line
from flexearn.demo.world import MARKETS
from flexearn.observability.metrics import prepare_multiprocess, remove_multiprocess_dir
from flexearn.services import clock as clock_service
from flexearn.services import scheduler
from flexearn.services.settlement import SettledHour

# cli.run_scheduler: settle hours as they come, reporting each, until a business time (or forever)
SchedulerLoop = Callable[[Flexearn, float, Callable[[SettledHour], None], int | None], None]


@dataclass(frozen=True)
class DemoOptions:
    host: str
    port: int
    speed: Decimal
    seed: int
    hours: int | None  # stop after this many business hours
    start: int | None  # business time the clock starts at (default: the current hour)
    history_hours: int
    token: str | None = None  # the operator's token's name (a new world: FLX unless given)


def run(
    database_url: str,
    settings: Settings,
    options: DemoOptions,
    scheduler_loop: SchedulerLoop,
    echo: Callable[[str], None],
    key_path: Path,
    *,
    progress: scheduler.Progress | None = None,
) -> None:
    saved = keyfile.read(key_path)
    saved_master = saved.master_key if saved else None
    master_key = settings.master_key or saved_master or generate_master_key()
    # The first key encrypts; the key file's still decrypts the secret it encrypted.
    master_keys = ",".join(dict.fromkeys(k for k in (master_key, saved_master) if k))
    # The settler thread records its metrics (flexearn_settler, the settled periods) here and the
    # server's worker process answers /metrics: they share samples as `flexearn serve`'s do.
    shared, metrics_dir = prepare_multiprocess(settings.metrics_dir)
    # The server's worker process reads its settings back from its environment, as `flexearn
    # serve`'s do; `demo` lets it start without an admin token (the admin API and user views open).
    served = replace(
        settings, database_url=database_url, master_key=master_keys, demo=True, metrics_dir=shared
    )
    os.environ.update(served.to_env())
    app = Flexearn(database_url)
    world = None
    try:
        world = restart.open_world(
            app,
            SecretBox(master_keys),
            saved.key if saved else None,
            seed=options.seed,
            speed=options.speed,
            start=options.start,
            history_hours=options.history_hours,
            progress=progress,
            token=options.token,
        )
        # FLEXEARN_MASTER_KEY is never copied to disk; a master key the demo made is.
        on_disk = saved_master if settings.master_key else master_key
        keyfile.write(key_path, keyfile.KeyFile(world.key, on_disk))
        local = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
        base = f"http://{local}:{options.port}"
        server = Granian(
            "flexearn.api.app:factory",
            address=options.host,
            port=options.port,
            interface=Interfaces.ASGI,
            workers=1,
            factory=True,
            log_access=False,
            log_level=LogLevels.warning,  # the banner says where it serves
            **listener.server_options(settings),
        )
        text = banner(base, database_url, world, speed=options.speed, key_file=key_path)
        until = None if options.hours is None else world.now + options.hours * HOUR_MS

        def settle() -> None:
            _wait_until_serving(base)
            echo(text)
            scheduler_loop(app, min(settings.poll_seconds, 0.5), _hour_printer(echo), until)
            if until is not None:
                server.signal_handler_interrupt()  # type: ignore[no-untyped-call]  # --hours: stop serving

        threading.Thread(target=settle, daemon=True).start()
        server.serve()
    finally:
        if world is not None:  # the world waits, clock stopped, for the next start to resume it
            clock_service.pause(app.uow())
        app.close()
        remove_multiprocess_dir(metrics_dir)


class PortInUse(RuntimeError):
    pass


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a port something listens on already: the server binds with SO_REUSEPORT, so a second
    demo would share the port with the first and answer with the other's keys half the time."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed port's TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUse(f"cannot listen on {host}:{port} ({error.strerror}); choose --port") from None


def _wait_until_serving(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/v5/public/time", timeout=2):
                return
        except OSError:
            time.sleep(0.1)


def _hour_printer(echo: Callable[[str], None]) -> Callable[[SettledHour], None]:
    """Collects each hour's currencies and prints the hour once all have settled."""
    pending: dict[int, dict[str, Decimal]] = {}

    def report(settled: SettledHour) -> None:
        rates = pending.setdefault(settled.hour, {})
        rates[settled.ccy] = settled.borrow_rate
        if len(rates) == len(MARKETS):
            when = datetime.fromtimestamp(settled.hour / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            echo(hour_line(when, dict(sorted(pending.pop(settled.hour).items()))))

    return report
