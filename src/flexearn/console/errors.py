"""Every mistake a person can make at the command line, told in one line with exit status 2:
a malformed database URL, a database out of reach or on another schema revision, a bad setting,
an unknown user or currency (naming the command that fixes it), an engine refusal."""

from __future__ import annotations

from decimal import Decimal

import click
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from flexearn.adapters.db import MIGRATIONS, current_revision
from flexearn.domain.errors import AmountTooLarge, FlexearnError, UnsupportedCurrency

USAGE = 2  # click's own status for a usage error; every refusal of the command exits with it
BACKENDS = ("sqlite", "postgresql", "postgres")


class CommandError(click.ClickException):
    """A refusal told in one line on stderr ("Error: …"), exit status 2."""

    exit_code = USAGE


def check_database_url(url: str, source: str) -> None:
    """Refuse what is not a SQLite or PostgreSQL URL; `source` names where it came from."""
    hint = "e.g. sqlite:///flexearn.db or postgresql://user@host/dbname"
    try:
        backend = sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        raise CommandError(f"{source}: {url!r} is not a database URL ({hint})") from None
    if backend not in BACKENDS:
        raise CommandError(f"{source}: {backend} databases are not supported ({hint})")


def unreachable(engine: sa.Engine, error: sa.exc.DBAPIError) -> CommandError:
    """The database did not answer: where, and the driver's first line of why."""
    where = engine.url.render_as_string(hide_password=True)
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    return CommandError(f"cannot reach the database {where}: {reason}")


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def require_schema(engine: sa.Engine) -> None:
    """Refuse a database whose schema is not the one this flexearn writes (none yet, older, or
    newer): only `flexearn migrate` (and `demo`, `serve --migrate`) changes a schema."""
    found, head = current_revision(engine), head_revision()
    if found == head:
        return
    if found is None:
        raise CommandError("the database has no flexearn schema yet: create it with `flexearn migrate`")
    if found in {s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}:
        raise CommandError(
            f"the database schema is at revision {found}, this flexearn needs {head}: "
            "back the database up, then upgrade it with `flexearn migrate`"
        )
    raise CommandError(
        f"the database schema ({found}) is newer than this flexearn ({head}): upgrade flexearn"
    )


def retold(error: FlexearnError, message: str) -> FlexearnError:
    """`error` (its code and parameter kept, for --json) told in the command line's words."""
    told = type(error).__new__(type(error), message)  # not its __init__: its arguments differ
    told.__dict__.update(vars(error))
    told.message = message
    told.args = (message,)
    return told


def in_context(error: FlexearnError, known_currency: bool) -> FlexearnError:
    """An unknown currency told with the command that fixes it, rather than in the exchanges'
    wire words ("Savings does not support this currency type")."""
    if not isinstance(error, UnsupportedCurrency):
        return error
    ccy = error.ccy
    if not known_currency:
        return retold(error, f"unknown currency {ccy}: add it with `flexearn currency add {ccy}`")
    return retold(error, f"{ccy} has no lending market: create one with `flexearn market set {ccy}`")


def nothing_to_redeem(error: AmountTooLarge, user: str, ccy: str) -> FlexearnError:
    """A redemption beyond the position, told as what the user holds ("…must be equal to or less
    than 0" says nothing to a person)."""
    if Decimal(error.limit) == 0:
        return retold(error, f"{user} holds no {ccy} savings to redeem")
    return retold(error, f"{user} holds {error.limit} {ccy} in savings: redeem at most that")
