"""Two costs every signed request paid over HTTP, measured alone (CPU µs, median of `--rounds`):

    python bench/request_overheads.py [--db sqlite,postgresql] [--n 2000] [--rounds 5]

- `access_log`: one JSON access log line (`ObservabilityMiddleware._record` with the JSON handler
  writing to /dev/null, as the server's does at INFO) less the same call with the access logger
  above INFO (metrics only: `metrics_only`).
- per database: `key_load`, one API key read and its secret decrypted (`keys.load_key`, what the
  Verifier did for every key every 5 s before it kept keys), and `revocation_check`, one ask for
  the keys revoked lately (`keys.revoked_since`, what it does now once a second per process).

Run it with `PYTHONPATH=OLD/src` for another checkout's figures (an old one has no
`revoked_since`: that column is left out).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from asgi_path import fresh_database  # the same fresh databases as the in-process benchmark's


def cpu_us(call: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - started) / n * 1e6


def access_log(n: int, rounds: int) -> dict[str, float]:
    from flexearn.observability import context, logs  # noqa: PLC0415
    from flexearn.observability.middleware import ObservabilityMiddleware  # noqa: PLC0415

    logs.configure_logging("INFO")
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open("/dev/null", "w"))  # noqa: SIM115
    middleware = ObservabilityMiddleware(lambda scope, receive, send: None)
    path = "/api/v5/finance/savings/balance"
    scope = {"type": "http", "path": path, "method": "GET", "client": ("127.0.0.1", 5000), "root_path": ""}
    info = context.RequestInfo("0123456789abcdef0123456789abcdef")
    access = logging.getLogger("flexearn.access")

    def record() -> None:
        middleware._record(scope, info, 200, 0.00123)

    with context.request_scope(info):
        cpu_us(record, n)  # warm up
        logged, quiet = [], []
        for _ in range(rounds):
            logged.append(cpu_us(record, n))
            access.setLevel(logging.WARNING)
            quiet.append(cpu_us(record, n))
            access.setLevel(logging.NOTSET)
    line = statistics.median(logged) - statistics.median(quiet)
    return {"access_log": round(line, 2), "metrics_only": round(statistics.median(quiet), 2)}


def key_costs(kind: str, n: int, rounds: int) -> dict[str, float]:
    from flexearn.adapters.secrets import SecretBox, generate_master_key  # noqa: PLC0415
    from flexearn.bootstrap import Flexearn  # noqa: PLC0415
    from flexearn.services import accounts, keys  # noqa: PLC0415

    url, drop = fresh_database(kind)
    app = Flexearn(url)
    try:
        box = SecretBox(generate_master_key())
        user = accounts.create_user(app.uow(), "bench")
        made = [keys.create_key(app.uow(), box, user, "read") for _ in range(20)]
        keys.revoke_key(app.uow(), made[-1].api_key)
        key = made[0].api_key
        loads = [cpu_us(lambda: keys.load_key(app.read_uow(), box, key), n) for _ in range(rounds)]
        figures = {"key_load": statistics.median(loads)}
        if hasattr(keys, "revoked_since"):
            since = int(time.time() * 1000) - 60_000
            figures["revocation_check"] = statistics.median(
                cpu_us(lambda: keys.revoked_since(app.read_uow(), since), n) for _ in range(rounds)
            )
        return {f"{kind}_{name}": round(value, 1) for name, value in figures.items()}
    finally:
        app.close()
        drop()


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = access_log(args.n * 10, args.rounds)
    for kind in args.db.split(","):
        figures |= key_costs(kind, args.n, args.rounds)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
