"""flexearn's request path against a raw ASGI app sending the same bytes, over real HTTP.

    python bench/http_bench.py [--db sqlite,postgresql] [--workers 1,2] [--rounds 3] [--duration 10]
                         [--connections 16] [--size 10000] [--sustained 300] [--json out.json]
                         [--sustained-endpoint balance]

Needs `wrk` (Debian: `apt-get install wrk`) as the load generator: one C thread drives 16
keep-alive connections far faster than any server here answers, so the server is what is measured.

For each database, a fresh one is filled as `bench/settlement.py` fills it (`--size` positions over
10 currencies, hour 1 settled) and `KEYS` of its users get an API key and USDT to buy with. Then,
for each worker count, `flexearn serve` (granian, `--no-scheduler`) and a raw ASGI app are started
under the same granian connection settings (`api/listener.py`); the raw app answers every path
with the status, headers and body flexearn gave for it, byte for byte. For each endpoint, rounds
alternate flexearn and raw (A B A B …), each `--duration` seconds of wrk; the table shows medians.

Every signed request is signed beforehand, unique (each key signs with its own secret and its own
millisecond) and freshly timestamped: a round's requests are signed just before it starts, more
than it can send, so nothing is replayed (a replayed one would be refused, 401, and counted).
Public requests come from many client addresses through a trusted proxy's X-Forwarded-For, as a
load balancer would send them, so per-IP limits see many clients; private ones are spread over
`KEYS` keys. Rate limits would still cap the totals, so the server runs with
FLEXEARN_RATE_LIMIT_SCALE (a benchmark setting: every per-second limit multiplied); an older
checkout without that setting is run with the same keys and addresses and stays under its limits.

The purchase floor is the same purchase done directly with the driver (sqlite3 / psycopg) on the
same database, in one thread: lock the funding row, two updates, a journal insert, commit. It runs
after every endpoint's rounds: its bare transactions (tens of thousands on SQLite) grow the file,
which slowed whatever endpoint was measured after it (a signed balance read ~0.6–0.75×).

`--sustained S` then runs signed balance reads (or `--sustained-endpoint`'s requests) for S
seconds as back-to-back 20 s segments (each signed afresh) and compares the first minute with
the last; each segment's p99 is listed too.

The script runs against an older checkout with `PYTHONPATH=that/src` (and that checkout's
`flexearn` on PATH as FLEXEARN_BIN), which is how the README's before/after figures were taken.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import settlement as world  # bench/settlement.py: the same fill and fresh databases
from flexearn.adapters import tables as t
from flexearn.adapters.db import normalise_url
from flexearn.adapters.secrets import SecretBox, generate_master_key, hash_passphrase
from flexearn.api.auth import hex_sign, sign
from flexearn.bootstrap import Flexearn
from flexearn.services import accounts

KEYS = 256  # API keys (one per user) the signed requests are spread over
PASSPHRASE = "bench-passphrase"
ADDRESSES = 4096  # client addresses the public requests come from (X-Forwarded-For)
SEGMENT_S = 20  # the sustained run's segment
# Requests signed per second of a round: more than any server here answers (6,000 was passed by two
# workers answering signed reads at 6,700 a second: wrk began again at the first request, and the
# replays refused counted as answers).
SIGNED_HEADROOM = 12_000
FLEXEARN = os.environ.get("FLEXEARN_BIN") or shutil.which("flexearn", path=str(Path(sys.executable).parent))
PREFIX = "/api/v5/finance/savings"
PURCHASE_BODY = b'{"ccy":"USDT","amt":"0.01","side":"purchase","rate":"0.01"}'
# name → (method, target, body, signed)
ENDPOINTS: dict[str, tuple[str, str, bytes, bool]] = {
    "balance": ("GET", f"{PREFIX}/balance?ccy=USDT", b"", True),
    "rate-history": ("GET", f"{PREFIX}/lending-rate-history?ccy=USDT", b"", False),
    "rate-summary": ("GET", f"{PREFIX}/lending-rate-summary?ccy=USDT", b"", False),
    "purchase": ("POST", f"{PREFIX}/purchase-redempt", PURCHASE_BODY, True),
    # Binance's signed read of the same funding balances: timestamp and signature in the query
    "binance-account": ("GET", "/api/v3/account?omitZeroBalances=true", b"", True),
}
BINANCE = {"binance-account"}

WRK_SCRIPT = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local reqs, n, i = {}, 0, 0
function init(args)
  for line in io.lines(args[1] .. "." .. id) do
    n = n + 1
    reqs[n] = (line:gsub("\t", "\r\n"))
  end
end
function request()
  i = i % n + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nRESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "status_errors": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""

RAW_APP = r'''
"""The raw ASGI app: each path answered with the bytes flexearn gave for it."""
import json, os

with open(os.environ["BENCH_RAW_ANSWERS"]) as f:
    ANSWERS = {
        path: (a["status"], [(k.encode(), v.encode()) for k, v in a["headers"]], a["body"].encode())
        for path, a in json.load(f).items()
    }


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as any app must
        message = await receive()
        more = message.get("more_body", False)
    status, headers, body = ANSWERS[scope["path"]]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
'''

RAW_SERVER = r"""
import sys
from granian import Granian
from granian.constants import Interfaces
from flexearn.api import listener
from flexearn.config import Settings

port, workers = int(sys.argv[1]), int(sys.argv[2])
Granian("raw_app:app", address="127.0.0.1", port=port, interface=Interfaces.ASGI, workers=workers,
        log_access=False, **listener.server_options(Settings())).serve()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the world ---------------------------------------------------------------------------------


def prepare(url: str, size: int, master_key: str) -> list[tuple[str, str]]:
    """Fill the database; `KEYS` users get a key (with one shared passphrase) and USDT: (key, secret)."""
    world.phase_setup(url, size)
    app = Flexearn(url)
    box = SecretBox(master_key)
    passphrase_hash = hash_passphrase(PASSPHRASE)  # scrypt once: the server verifies once per key
    keys = [(f"bench-key-{u:05d}", secrets.token_hex(16).upper()) for u in range(1, KEYS + 1)]
    now = int(time.time() * 1000)
    with app.engine.begin() as conn:
        conn.execute(
            sa.insert(t.api_key),
            [
                {
                    "key": key,
                    "user_id": u,
                    "secret_encrypted": box.encrypt(secret),
                    "passphrase_hash": passphrase_hash,
                    "permissions": "read,trade",
                    "ip_allowlist": "",
                    "expires_at": None,
                    "created_at": now,
                    "revoked_at": None,
                }
                for u, (key, secret) in enumerate(keys, start=1)
            ],
        )
    for u in range(1, KEYS + 1):
        accounts.deposit(app.uow(), u, "USDT", Decimal(1_000_000))
    app.close()
    return keys


# --- the requests ------------------------------------------------------------------------------


def okx_timestamp(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def http_request(method: str, target: str, body: bytes, headers: dict[str, str]) -> str:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return "\t".join(lines) + "\t\t" + body.decode()


def write_requests(base: Path, name: str, keys: list[tuple[str, str]], count: int, threads: int) -> None:
    """`count` requests for endpoint `name`, split over `threads` files (`base.0`, `base.1`, …)."""
    method, target, body, signed = ENDPOINTS[name]
    files = [open(f"{base}.{n}", "w") for n in range(threads)]  # noqa: SIM115 - closed below
    try:
        start = int(time.time() * 1000)
        for i in range(count):
            sent = target
            if signed and name in BINANCE:  # the widest recvWindow: a round's requests are signed first
                key, secret = keys[i % len(keys)]
                query = f"{target.partition('?')[2]}&recvWindow=60000&timestamp={start + i // len(keys)}"
                sent = f"{target.partition('?')[0]}?{query}&signature={hex_sign(secret, query.encode())}"
                headers = {"X-MBX-APIKEY": key}
            elif signed:
                key, secret = keys[i % len(keys)]
                stamp = okx_timestamp(start + i // len(keys))  # each key: one request per ms
                headers = {
                    "OK-ACCESS-KEY": key,
                    "OK-ACCESS-SIGN": sign(secret, stamp, method, target.encode(), body),
                    "OK-ACCESS-TIMESTAMP": stamp,
                    "OK-ACCESS-PASSPHRASE": PASSPHRASE,
                }
            else:
                a = i % ADDRESSES
                headers = {"X-Forwarded-For": f"10.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"}
            files[i % threads].write(http_request(method, sent, body, headers) + "\n")
    finally:
        for f in files:
            f.close()


def wrk(
    base_url: str, requests: Path, script: Path, duration: float, connections: int, threads: int
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{round(duration)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base_url,
            "--",
            str(requests),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.split("RESULT ", 1)[1])
    seconds = result["duration_us"] / 1e6
    return {
        "rps": result["requests"] / seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["status_errors"] + result["socket_errors"],
        "requests": result["requests"],
    }


# --- the servers -------------------------------------------------------------------------------


def wait_until_up(base_url: str, proc: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server at {base_url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(base_url + path, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server at {base_url} did not answer in 60 s")


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def server_env(url: str, master_key: str) -> dict[str, str]:
    return {
        **os.environ,
        "FLEXEARN_DATABASE_URL": url,
        "FLEXEARN_MASTER_KEY": master_key,
        "FLEXEARN_ADMIN_TOKEN": "bench-admin-token-0123456789",
        "FLEXEARN_TRUSTED_PROXIES": "127.0.0.1/32",
        "FLEXEARN_RATE_LIMIT_SCALE": "1000000",
    }


def capture(base_url: str, keys: list[tuple[str, str]], work: Path) -> dict[str, Any]:
    """Each endpoint's answer from flexearn (status, headers, body): what the raw app sends."""
    answers: dict[str, Any] = {}
    for name, (_method, target, _body, _signed) in ENDPOINTS.items():
        requests = work / f"capture-{name}"
        write_requests(requests, name, keys[-1:], 1, 1)
        raw = Path(f"{requests}.0").read_text().rstrip("\n").replace("\t", "\r\n").encode()
        with socket.create_connection(("127.0.0.1", int(base_url.rsplit(":", 1)[1]))) as s:
            s.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
            length = int(next(v for k, v in headers if k.lower() == "content-length"))
            while len(body) < length:
                body += s.recv(65536)
        status = int(lines[0].split()[1])
        if status != 200:
            raise SystemExit(f"{name}: flexearn answered {status}: {body[:300]!r}")
        keep = [(k, v) for k, v in headers if k.lower() not in ("date", "server")]  # granian adds both
        answers[target.split("?")[0]] = {"status": status, "headers": keep, "body": body.decode()}
    return answers


# --- the purchase floor ------------------------------------------------------------------------


def purchase_floor(url: str, seconds: float) -> float:
    """Purchases per second done with the bare driver: lock the funding row, two updates, one
    journal insert, commit; on tables of their own beside flexearn's, in the same database."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        begin, lock, mark = "BEGIN IMMEDIATE", "SELECT amount FROM floor_funding WHERE id = ?", "?"
    else:
        import psycopg  # noqa: PLC0415

        conn = psycopg.connect(
            sa.make_url(url).set(drivername="postgresql").render_as_string(False), autocommit=True
        )
        begin, lock, mark = "BEGIN", "SELECT amount FROM floor_funding WHERE id = %s FOR UPDATE", "%s"
    conn.execute("CREATE TABLE IF NOT EXISTS floor_funding (id INTEGER PRIMARY KEY, amount NUMERIC(38, 18))")
    conn.execute("CREATE TABLE IF NOT EXISTS floor_position (id INTEGER PRIMARY KEY, amount NUMERIC(38, 18))")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS floor_journal (id INTEGER PRIMARY KEY, user_id INTEGER,"
        " amount NUMERIC(38, 18), at BIGINT)"
    )
    conn.execute("DELETE FROM floor_journal")
    for table in ("floor_funding", "floor_position"):
        conn.execute(f"DELETE FROM {table}")
        for u in range(1, KEYS + 1):
            conn.execute(f"INSERT INTO {table} VALUES ({mark}, {mark})", (u, "1000000"))
    done, started, amount = 0, time.perf_counter(), Decimal("0.01")
    while time.perf_counter() - started < seconds:
        u = done % KEYS + 1
        conn.execute(begin)
        (funding,) = conn.execute(lock, (u,)).fetchone()
        if Decimal(str(funding)) < amount:
            raise SystemExit("the floor ran out of funds")
        conn.execute(f"UPDATE floor_funding SET amount = amount - {mark} WHERE id = {mark}", (str(amount), u))
        conn.execute(
            f"UPDATE floor_position SET amount = amount + {mark} WHERE id = {mark}", (str(amount), u)
        )
        conn.execute(
            f"INSERT INTO floor_journal (id, user_id, amount, at) VALUES ({mark}, {mark}, {mark}, {mark})",
            (done + 1, u, str(amount), int(time.time() * 1000)),
        )
        conn.execute("COMMIT")
        done += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return done / elapsed


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    """flexearn and the raw app, running on one database with `workers` processes each."""

    db: str
    workers: int
    flexearn_url: str
    raw_url: str
    flexearn_pid: int  # process groups: the servers and their workers
    raw_pid: int
    keys: list[tuple[str, str]]
    work: Path
    args: argparse.Namespace

    @property
    def script(self) -> Path:
        return self.work / "signed.lua"


def run_database(db: str, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    (work / "signed.lua").write_text(WRK_SCRIPT)
    (work / "raw_app.py").write_text(RAW_APP)
    (work / "raw_server.py").write_text(RAW_SERVER)
    with world.fresh_database(db) as url:
        master_key = generate_master_key()
        keys = prepare(url, args.size, master_key)
        env = server_env(url, master_key)
        for workers in args.workers:
            fport, rport = free_port(), free_port()
            flexearn_url, raw_url = f"http://127.0.0.1:{fport}", f"http://127.0.0.1:{rport}"
            serve = [FLEXEARN, "serve", "--port", str(fport), "--workers", str(workers), "--no-scheduler"]
            with process(serve, env, work / "flexearn.log") as fproc:
                wait_until_up(flexearn_url, fproc, "/api/v5/public/time")
                answers = capture(flexearn_url, keys, work)
                (work / "answers.json").write_text(json.dumps(answers))
                raw_env = {
                    **env,
                    "BENCH_RAW_ANSWERS": str(work / "answers.json"),
                    "PYTHONPATH": os.pathsep.join([str(work), *sys.path[1:]]),
                }
                raw_cmd = [sys.executable, str(work / "raw_server.py"), str(rport), str(workers)]
                with process(raw_cmd, raw_env, work / "raw.log") as rproc:
                    wait_until_up(raw_url, rproc, f"{PREFIX}/balance")
                    servers = Servers(
                        db, workers, flexearn_url, raw_url, fproc.pid, rproc.pid, keys, work, args
                    )
                    warm(flexearn_url, keys, work, workers)
                    measured = [compare(servers, name) for name in args.endpoints]
                    for row in measured:  # the floor last: its bare transactions grow the file
                        if row["endpoint"] == "purchase":
                            row["floor_tps"] = purchase_floor(url, args.duration)
                            row["of_floor"] = row["flexearn_rps"] / row["floor_tps"]
                        print(format_row(row), flush=True)
                    rows += measured
                if args.sustained and workers == args.workers[0]:
                    rows.append(sustained(servers))
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def warm(base_url: str, keys: list[tuple[str, str]], work: Path, workers: int) -> None:
    """Every key used by every worker, each request answered 200: a key's first request in a
    process verifies its passphrase (scrypt, once per key and process), which is not what the
    rounds measure. Each request on a new connection, which any worker may accept: 8 per key and
    worker leave a key unseen by a worker with a chance of 2^-8 per worker. Signed a pass at a
    time, so that none is older than the 30 s window when it is sent."""
    requests = work / "warm"
    port = int(base_url.rsplit(":", 1)[1])

    def send(raw: str) -> int:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(raw.replace("\t", "\r\n").encode())
            return int(s.recv(65536).split(b" ", 2)[1])

    statuses: set[int] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(8 * workers):
            write_requests(requests, "balance", keys, len(keys), 1)
            statuses |= set(pool.map(send, Path(f"{requests}.0").read_text().splitlines()))
    if statuses != {200}:
        raise SystemExit(f"warming the keys: answers {sorted(statuses)}")


def compare(servers: Servers, name: str) -> dict[str, Any]:
    args, db, workers = servers.args, servers.db, servers.workers
    runs: dict[str, list[dict[str, Any]]] = {"flexearn": [], "raw": []}
    requests = servers.work / f"requests-{name}"
    for n in range(args.rounds):
        for target, base_url in (("flexearn", servers.flexearn_url), ("raw", servers.raw_url)):
            count = int(args.duration * SIGNED_HEADROOM) if target == "flexearn" else 20_000
            write_requests(requests, name, servers.keys, count, args.threads)
            profiling = args.profile and target == "flexearn" and n == 0
            pid = servers.flexearn_pid if target == "flexearn" else servers.raw_pid
            cpu = cpu_seconds(pid)
            with (
                profiled(pid, Path(args.profile) / f"{db}-{workers}w-{name}.txt", args.duration)
                if profiling
                else contextlib.nullcontext()
            ):
                run = wrk(base_url, requests, servers.script, args.duration, args.connections, args.threads)
            run["cpu_ms"] = (cpu_seconds(pid) - cpu) * 1000 / max(1, run["requests"])
            runs[target].append(run)
    f, r = runs["flexearn"], runs["raw"]
    row = {
        "db": db,
        "workers": workers,
        "endpoint": name,
        "flexearn_rps": statistics.median(x["rps"] for x in f),
        "raw_rps": statistics.median(x["rps"] for x in r),
        "p50_ms": statistics.median(x["p50_ms"] for x in f),
        "p99_ms": statistics.median(x["p99_ms"] for x in f),
        "raw_p99_ms": statistics.median(x["p99_ms"] for x in r),
        "cpu_ms": statistics.median(x["cpu_ms"] for x in f),
        "raw_cpu_ms": statistics.median(x["cpu_ms"] for x in r),
        "errors": sum(x["errors"] for x in f),
        "rounds": [round(x["rps"]) for x in f],
    }
    row["ratio"] = row["flexearn_rps"] / row["raw_rps"]
    return row


def cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of every process in the server's process group (its workers)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:  # field 5, the process group
                    total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


@contextlib.contextmanager
def profiled(pid: int, out: Path, seconds: float) -> Iterator[None]:
    """py-spy samples the server (its workers too) for `seconds`: collapsed stacks in `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--gil",
            "--rate",
            "250",
            "--duration",
            str(round(seconds) - 1),
            "--format",
            "raw",
            "--nonblocking",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.wait()


def sustained(servers: Servers) -> dict[str, Any]:
    args = servers.args
    segments: list[dict[str, Any]] = []
    requests = servers.work / "requests-sustained"
    for _ in range(max(1, round(args.sustained / SEGMENT_S))):
        count = SEGMENT_S * SIGNED_HEADROOM
        write_requests(requests, args.sustained_endpoint, servers.keys, count, args.threads)
        run = wrk(servers.flexearn_url, requests, servers.script, SEGMENT_S, args.connections, args.threads)
        segments.append(run)
    per_minute = 60 // SEGMENT_S
    first = statistics.mean(s["rps"] for s in segments[:per_minute])
    last = statistics.mean(s["rps"] for s in segments[-per_minute:])
    return {
        "db": servers.db,
        "workers": servers.workers,
        "endpoint": f"{args.sustained_endpoint}, sustained",
        "seconds": SEGMENT_S * len(segments),
        "first_minute_rps": round(first),
        "last_minute_rps": round(last),
        "last_of_first": round(last / first, 3),
        "segments": [round(s["rps"]) for s in segments],
        "errors": sum(s["errors"] for s in segments),
        "p99_ms_last": segments[-1]["p99_ms"],
        "p99_ms_segments": [s["p99_ms"] for s in segments],
    }


def format_row(row: dict[str, Any]) -> str:
    text = (
        f"| {row['endpoint']} | {row['db']} | {row['workers']} | {row['flexearn_rps']:,.0f} | "
        f"{row['raw_rps']:,.0f} | {row['ratio']:.1%} | {row['p50_ms']:.1f} / {row['p99_ms']:.1f} ms | "
        f"{row['cpu_ms']:.2f} / {row['raw_cpu_ms']:.3f} ms | {row['errors']} |"
    )
    if "floor_tps" in row:
        text += f" floor {row['floor_tps']:,.0f} tx/s: {row['of_floor']:.1%} |"
    return text


HEADER = (
    "| endpoint | db | workers | flexearn req/s | raw req/s | ratio | flexearn p50 / p99 |"
    " CPU per request, flexearn / raw | refused |\n|---|---|---:|---:|---:|---:|---|---|---:|"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (each takes a core)")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--sustained", type=float, default=0.0, help="seconds of sustained signed requests")
    parser.add_argument(
        "--sustained-endpoint", default="balance", choices=ENDPOINTS, help="what the sustained run asks"
    )
    parser.add_argument("--json", help="write every row to this file")
    parser.add_argument(
        "--profile", help="py-spy the first flexearn round of each endpoint into this directory"
    )
    parser.add_argument("--work", help="keep the servers' logs and the requests in this directory")
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    args.endpoints = args.endpoints.split(",")
    if shutil.which("wrk") is None:
        raise SystemExit("bench/http_bench.py needs wrk: apt-get install wrk")
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        directory = args.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="flexearn-http-"))
        Path(directory).mkdir(parents=True, exist_ok=True)
        print(HEADER, flush=True)
        for db in args.db.split(","):
            rows += run_database(db, args, Path(directory))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
