"""flexearn's request path in process: N requests through the whole ASGI app, no server, no network.

    python bench/asgi_path.py [--db sqlite,postgresql]
                              [--endpoints balance,rate-history,purchase,purchase-rate,asset-balances]
                              [--n 3000] [--rounds 3] [--concurrency 1] [--before OLD/src]
                              [--profile DIR]

`bench/http_bench.py` measures the path as a client sees it, against a raw app on the same server;
on a shared machine its signed rows move by ±30 % between runs. This one measures only flexearn's
own work: each request is a real ASGI call (every middleware, the façade, the handler in its
database slot, the access log to /dev/null, the metrics), timed as the CPU time of the process
(both threads) and wall time, per request. It is the quick loop for a change on the hot path.

Each (database, endpoint, round) runs in a fresh process on a fresh database: one user with a
position and an API key; 200 requests to warm up, then `--n`. Signed requests are signed as OKX
documents (HMAC-SHA256 over timestamp, method, path and body, base64) as it is sent (its signing,
a few microseconds, is timed with it), each with its own millisecond, so none is refused as stale
or as a replay; the table counts any answer other than 200. `--concurrency C` keeps C requests in
flight (C tasks, each asking in turn), as a server's C connections would: what the event loop's
batching (a turn's claims, PostgreSQL's reads of a turn) and its waits add or save. With
`--before`, the same runs alternate with the code at that path (`PYTHONPATH`), and the table shows
both medians and their ratio. With `--profile DIR`, each run is recorded by py-spy (`--gil`: the
thread holding the GIL, 1000 Hz, collapsed stacks, `DIR/<version>-<db>-<endpoint>-<round>.txt`;
the profiler's own cost is in that run's figures).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

POSTGRES = os.environ.get("FLEXEARN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SAVINGS = "/api/v5/finance/savings"
PURCHASE = '{"ccy":"USDT","amt":"0.001","side":"purchase"}'
PURCHASE_RATE = '{"ccy":"USDT","amt":"0.001","side":"purchase","rate":"0.01"}'  # http_bench.py's
ENDPOINTS = {  # name: (method, target, body, signed)
    "balance": ("GET", f"{SAVINGS}/balance?ccy=USDT", "", True),
    "rate-history": ("GET", f"{SAVINGS}/lending-rate-history?ccy=USDT", "", False),
    "purchase": ("POST", f"{SAVINGS}/purchase-redempt", PURCHASE, True),
    "purchase-rate": ("POST", f"{SAVINGS}/purchase-redempt", PURCHASE_RATE, True),
    "asset-balances": ("GET", "/api/v5/asset/balances?ccy=USDT", "", True),
}
WARM = 200


def child(db: str, endpoint: str, n: int, concurrency: int = 1) -> dict[str, float]:
    """One measurement, in this (fresh) process; `db` is a database URL. `concurrency` requests at
    a time (as many tasks, each asking in turn), as a server's connections would."""
    import uvloop  # noqa: PLC0415  (the parent needs none of these)

    from flexearn.adapters.secrets import SecretBox, generate_master_key  # noqa: PLC0415
    from flexearn.api.app import create_app  # noqa: PLC0415
    from flexearn.bootstrap import Flexearn  # noqa: PLC0415
    from flexearn.config import Settings  # noqa: PLC0415
    from flexearn.observability.logs import configure_logging  # noqa: PLC0415
    from flexearn.services import accounts, keys, markets, savings  # noqa: PLC0415

    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (the access log: written, not kept)
    configure_logging("INFO")  # as `flexearn serve` does: the JSON access line of every request
    app = Flexearn(db)
    accounts.add_currency(app.uow(), "USDT", 8)
    markets.set_market(app.uow(), "USDT", mode="auction", demand=Decimal(0), borrow_rate=Decimal(0))
    user = accounts.create_user(app.uow(), "bench")
    accounts.deposit(app.uow(), user, "USDT", Decimal(1_000_000))
    savings.purchase(app.uow(), user, "USDT", Decimal(10), None)
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user, "read,trade")
    settings = Settings(master_key=master, demo=True, rate_limit_scale=1_000_000, database_url=db)
    asgi = create_app(settings, app)
    method, target, body, signed = ENDPOINTS[endpoint]
    path, _, query = target.partition("?")
    last = [0]

    def scope() -> dict[str, Any]:
        """The next request; a signed one signed now (OKX refuses a timestamp 30 s old), each with
        its own millisecond (else it would be a replay)."""
        headers = [(b"content-length", str(len(body)).encode())] if body else []
        if signed:
            last[0] = max(last[0] + 1, int(time.time() * 1000))
            at = datetime.fromtimestamp(last[0] / 1000, UTC)
            ts = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            mac = hmac.new(key.secret_key.encode(), f"{ts}{method}{target}{body}".encode(), hashlib.sha256)
            headers += [
                (b"ok-access-key", key.api_key.encode()),
                (b"ok-access-sign", base64.b64encode(mac.digest())),
                (b"ok-access-timestamp", ts.encode()),
                (b"ok-access-passphrase", key.passphrase.encode()),
            ]
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }

    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def ask(count: int) -> None:
        for _ in range(count):
            await asgi(scope(), receive, send)

    async def run() -> tuple[float, float]:
        await ask(WARM)
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(ask(n // concurrency + (i < n % concurrency)) for i in range(concurrency)))
        return time.perf_counter() - wall, time.process_time() - cpu

    wall, cpu = uvloop.run(run())
    app.close()
    refused = sum(status != 200 for status in statuses)
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6, "refused": refused}


# Where a request's GIL samples go (first match wins), for `--profile`'s summary: frame substrings.
PROFILE_GROUPS = (
    ("replay claim alone", ("Claim.alone",)),
    ("read (+ joined claim) through the driver", ("in_turn (flexearn",)),
    ("handler (before: its SQLAlchemy read)", ("Facade._handle",)),
    ("thread hop", ("ThreadPoolExecutor.submit", "_chain_future", "_worker (concurrent")),
    ("signing (this benchmark's client)", ("child.<locals>.scope",)),
    ("ASGI, middleware, auth, limits, metrics", ("Starlette.__call__",)),
)


def summarise(path: str) -> str:
    """The share of a profile's request samples (py-spy raw) in each of PROFILE_GROUPS."""
    shares = dict.fromkeys([name for name, _ in PROFILE_GROUPS] + ["other"], 0)
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "child.<locals>.run" not in stack and "_worker (concurrent" not in stack:
            continue  # set-up, not a request
        total += int(count)
        group = next((g for g, marks in PROFILE_GROUPS if any(m in stack for m in marks)), "other")
        shares[group] += int(count)
    return ", ".join(f"{name} {100 * n / max(total, 1):.0f} %" for name, n in shares.items())


def fresh_database(kind: str) -> tuple[str, Any]:
    """A database URL and a function that removes it."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="flexearn-asgi-")
        return f"sqlite:///{folder}/bench.db", lambda: subprocess.run(["rm", "-rf", folder], check=False)
    import sqlalchemy as sa  # noqa: PLC0415

    name = f"flexearn_asgi_{uuid.uuid4().hex[:10]}"
    driver_url = POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(driver_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return str(sa.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)), drop


def measure(
    kind: str, endpoint: str, n: int, src: str | None, profile: str | None = None, concurrency: int = 1
) -> dict[str, float]:
    """One run in a fresh process on a fresh database; recorded by py-spy into `profile` if given."""
    url, drop = fresh_database(kind)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    command = [sys.executable, __file__, "--child", url, endpoint, str(n), str(concurrency)]
    if profile:
        spy = str(Path(sys.executable).with_name("py-spy"))
        Path(profile).parent.mkdir(parents=True, exist_ok=True)  # py-spy does not make it
        record = ["record", "--gil", "--nonblocking", "-r", "1000", "-f", "raw", "-o", profile, "--"]
        command = [spy, *record, *command]
    try:
        out = subprocess.run(
            command, env=env, capture_output=True, text=True, check=True, timeout=1800
        ).stdout
    finally:
        drop()
    # the child's last line (py-spy, if profiling, writes its own lines after it)
    return dict(json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{"))))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="an older checkout's src/, run alternately with this one")
    parser.add_argument("--profile", help="record each run with py-spy into this directory")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (a server's connections)"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, endpoint, n, concurrency = args.child
        print(json.dumps(child(url, endpoint, int(n), int(concurrency))))
        return
    versions = [("before", args.before), ("after", None)] if args.before else [("now", None)]
    rows = []
    for kind in args.db.split(","):
        for endpoint in args.endpoints.split(","):
            results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in versions}
            for i in range(args.rounds):
                for name, src in versions:
                    profile = args.profile and f"{args.profile}/{name}-{kind}-{endpoint}-{i}.txt"
                    results[name].append(measure(kind, endpoint, args.n, src, profile, args.concurrency))
            medians = {
                name: {m: statistics.median(r[m] for r in runs) for m in ("cpu_us", "wall_us", "refused")}
                for name, runs in results.items()
            }
            rows.append((kind, endpoint, medians))
            line = {"db": kind, "endpoint": endpoint, "load": os.getloadavg()[0], **results}
            print(json.dumps(line), flush=True)
    names = [name for name, _ in versions]
    head = " | ".join(f"{name} CPU / wall µs" for name in names)
    ratio = " | after / before (CPU)" if args.before else ""
    columns = "---:|" * (len(names) + bool(ratio) + 1)
    print(f"\n| db | endpoint | {head}{ratio} | refused |\n|---|---|{columns}")
    for kind, endpoint, medians in rows:
        cells = " | ".join(f"{medians[n]['cpu_us']:,.0f} / {medians[n]['wall_us']:,.0f}" for n in names)
        change = f" | {medians['after']['cpu_us'] / medians['before']['cpu_us']:.2f}" if args.before else ""
        refused = max(int(medians[n]["refused"]) for n in names)
        print(f"| {kind} | {endpoint} | {cells}{change} | {refused} |")
    if args.profile:
        print()
        for path in sorted(Path(args.profile).glob("*.txt")):
            print(f"{path.name}: {summarise(str(path))}")


if __name__ == "__main__":
    main()
