"""Settings, read from the environment once and passed down (nothing reads os.environ later)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///flexearn.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Seconds the worker sleeps at most between looks at the clock.
    poll_seconds: float = 1.0
    # Fernet key(s) that encrypt API secrets at rest; comma-separated for rotation (first encrypts).
    master_key: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("FLEXEARN_DATABASE_URL", DEFAULT_DATABASE_URL),
            poll_seconds=float(env.get("FLEXEARN_POLL_SECONDS", "1.0")),
            master_key=env.get("FLEXEARN_MASTER_KEY", ""),
        )
