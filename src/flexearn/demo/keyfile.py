"""The sandbox's key file: the demo user's key and the master key its secret is encrypted under.

It sits beside the database (`flexearn-demo.db` → `flexearn-demo.key.json`), readable by its
owner only, so that a restarted demo — or one rebuilt with `--reset` — serves the key a bot is
already configured with. The passphrase is stored only as a hash in the database, so this file is
the one place the printed key can be read back from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from flexearn.services.keys import NewKey

DEFAULT_NAME = "flexearn-demo.key.json"


@dataclass(frozen=True)
class KeyFile:
    key: NewKey
    master_key: str | None  # None when FLEXEARN_MASTER_KEY supplied it (never copied to disk)


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite URL, or None for another database (or an in-memory one)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def path_for(database_url: str) -> Path:
    database = sqlite_file(database_url)
    if database is None:
        return Path(DEFAULT_NAME)
    return database.with_name(database.stem + ".key.json")


def read(path: Path) -> KeyFile | None:
    try:
        data = json.loads(path.read_text())
        key = NewKey(str(data["apiKey"]), str(data["secretKey"]), str(data["passphrase"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KeyFileError(f"cannot read the demo's key file {path}: {error}") from None
    master = data.get("masterKey")
    return KeyFile(key, str(master) if master else None)


def write(path: Path, keyfile: KeyFile) -> None:
    data = {
        "apiKey": keyfile.key.api_key,
        "secretKey": keyfile.key.secret_key,
        "passphrase": keyfile.key.passphrase,
    }
    if keyfile.master_key:
        data["masterKey"] = keyfile.master_key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file may have been readable by others
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")


class KeyFileError(RuntimeError):
    pass
