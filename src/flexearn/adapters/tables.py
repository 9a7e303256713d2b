"""The database schema (SQLAlchemy Core). Migrations in `migrations/` create it.

Amounts are exact: `NUMERIC` on PostgreSQL, canonical decimal text on SQLite (which has no
decimal type; SQL never does arithmetic on them there). Times are integer milliseconds since the
Unix epoch, UTC: `ts`/`hour` columns are business time, `created_at` real time.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from flexearn.domain import vocabulary
from flexearn.domain.catalog import (
    OPERATOR_STATUSES,
    ApyType,
    Level,
    OrderStatus,
    OrderType,
    PeriodType,
    SettleMethod,
)
from flexearn.domain.earn_wallets import Wallet
from flexearn.domain.ledger import AccountKind
from flexearn.domain.market import DemandSource, MatchingMode
from flexearn.domain.money import MAX_PRECISION, ZERO, plain
from flexearn.domain.periods import ClockMode, PeriodKind


class Amount(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC where the database has it, text on SQLite."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(64))
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"amounts are Decimal, not {type(value)!r}")
        return plain(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else exact(value)


def exact(value: str | Decimal) -> Decimal:
    """An amount as the driver returns it (psycopg: a Decimal; SQLite: its canonical text), exact:
    for rows read straight through the driver (`db.alone`), as `Amount` reads them."""
    return Decimal(value) if isinstance(value, str) else value


def sql_list(values: Iterable[StrEnum]) -> str:
    """`'a', 'b'`: an enum's values (or some of its members) as an SQL list, in their order."""
    texts = vocabulary.values(values)
    assert all(text.isidentifier() for text in texts), texts  # nothing to quote inside the quotes
    return ", ".join(f"'{text}'" for text in texts)


def one_of(column: str, values: Iterable[StrEnum]) -> sa.CheckConstraint:
    """The CHECK that `column` holds one of the domain's `values`, named after the column: the
    domain's enum is the one source of the vocabulary (tests/integration/test_schema_checks.py
    holds every migrated database to it)."""
    return sa.CheckConstraint(f"{column} IN ({sql_list(values)})", name=column)


def partial_index(
    name: str, *columns: sa.Column[Any], where: sa.ColumnElement[bool] | sa.TextClause
) -> sa.Index:
    """An index of the rows where `where` holds, on both databases."""
    return sa.Index(name, *columns, sqlite_where=where, postgresql_where=where)


USER_KINDS_SQL = sql_list(kind for kind in AccountKind if kind.user_owned)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

currency = sa.Table(
    "currency",
    metadata,
    sa.Column("ccy", sa.String(16), primary_key=True),
    sa.Column("precision", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.CheckConstraint(f"precision >= 0 AND precision <= {MAX_PRECISION}", name="precision_range"),
)

user = sa.Table(
    "user_account",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Wall-clock ms of the last accepted catalog redemption: Bitget's are a minute apart.
    sa.Column("last_redeem_at", sa.BigInteger, nullable=True),
    one_of("level", Level),
)


# PostgreSQL pages of the tables settlement rewrites row by row (every position each hour, a
# holding's and a funding account's row each day) keep room for the new row versions, so they are
# written beside the old, without new index entries (HOT updates; migration 0018).
REWRITTEN_IN_PLACE = {"fillfactor": 80}

account = sa.Table(
    "ledger_account",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("key", sa.String(96), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("ccy", sa.String(16), sa.ForeignKey("currency.ccy"), nullable=False),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("user_account.id"), nullable=True),
    # Materialised for user accounts only; system balances are the sum of their legs, so hot
    # system accounts are never a row every transaction has to lock.
    sa.Column("balance", Amount, nullable=True),
    # User accounts (domain.ledger.USER_KINDS) are owned by a user; system accounts by none.
    sa.CheckConstraint(f"(user_id IS NULL) = (kind NOT IN ({USER_KINDS_SQL}))", name="owner"),
    sa.CheckConstraint("(balance IS NULL) = (user_id IS NULL)", name="materialised"),
    postgresql_with=REWRITTEN_IN_PLACE,
)
sa.Index("ix_ledger_account_user", account.c.user_id, account.c.ccy)

journal_entry = sa.Table(
    "journal_entry",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("ccy", sa.String(16), sa.ForeignKey("currency.ccy"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ref", sa.String(128), nullable=False, default=""),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

journal_leg = sa.Table(
    "journal_leg",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("journal_entry.id"), nullable=False, index=True),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_account.id"), nullable=False, index=True),
    sa.Column("ccy", sa.String(16), nullable=False),
    sa.Column("amount", Amount, nullable=False),
    sa.Column("position_id", sa.BigInteger, sa.ForeignKey("savings_position.id"), nullable=True),
    sa.Column("holding_id", sa.BigInteger, sa.ForeignKey("earn_holding.id"), nullable=True),
)
# A position's and a holding's legs; partial (migration 0018): most legs are neither's (funding,
# interest expense, control accounts), and an entry for each of those would be written and never read.
_leg = journal_leg.c
partial_index("ix_journal_leg_position_id", _leg.position_id, where=_leg.position_id.is_not(None))
partial_index("ix_journal_leg_holding_id", _leg.holding_id, where=_leg.holding_id.is_not(None))

market = sa.Table(
    "market",
    metadata,
    sa.Column("ccy", sa.String(16), sa.ForeignKey("currency.ccy"), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("insurance_fee", Amount, nullable=False),
    sa.Column("demand_source", sa.String(16), nullable=False),
    sa.Column("demand", Amount, nullable=False),  # static demand per hour
    sa.Column("borrow_rate", Amount, nullable=False),  # static r_b for pro rata
    sa.Column("simulation", sa.Text, nullable=False, default="{}"),  # JSON parameters
    sa.Column("first_hour", sa.BigInteger, nullable=False),  # first hour to settle
    one_of("mode", MatchingMode),
    one_of("demand_source", DemandSource),
)

position = sa.Table(
    "savings_position",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("user_account.id"), nullable=False),
    sa.Column("ccy", sa.String(16), sa.ForeignKey("market.ccy"), nullable=False),
    sa.Column("amt", Amount, nullable=False),
    sa.Column("loan", Amount, nullable=False),
    sa.Column("earnings", Amount, nullable=False),
    sa.Column("rate", Amount, nullable=False),  # the user's minimum lending rate
    sa.Column("rate_seq", sa.BigInteger, nullable=False),  # first set, first served
    sa.Column("rate_set_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("user_id", "ccy", name="uq_savings_position_user_ccy"),
    postgresql_with=REWRITTEN_IN_PLACE,
)
# (ccy, user_id): a currency's positions, and a range of its users' (range settlement)
sa.Index("ix_savings_position_ccy_user", position.c.ccy, position.c.user_id)

rate_setting = sa.Table(
    "rate_setting",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("position_id", sa.BigInteger, sa.ForeignKey("savings_position.id"), nullable=False),
    sa.Column("rate", Amount, nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
)

market_hour = sa.Table(
    "market_hour",
    metadata,
    sa.Column("ccy", sa.String(16), sa.ForeignKey("market.ccy"), primary_key=True),
    # The primary key is what makes each (currency, hour) settle exactly once.
    sa.Column("hour", sa.BigInteger, primary_key=True),
    sa.Column("demand", Amount, nullable=False),
    sa.Column("borrow_rate", Amount, nullable=False),
    sa.Column("lender_rate", Amount, nullable=False),
    sa.Column("pool_rate", Amount, nullable=False),
    sa.Column("supply", Amount, nullable=False),
    sa.Column("lent", Amount, nullable=False),
    sa.Column("interest_paid", Amount, nullable=False),  # for the hour before
    sa.Column("insurance_fee", Amount, nullable=False),
    sa.Column("borrower_paid", Amount, nullable=False),
    sa.Column("rounding", Amount, nullable=False),
    sa.Column("demand_state", sa.String(64), nullable=False, default=""),
    sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("journal_entry.id"), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint("hour = (hour / 3600000) * 3600000", name="on_the_hour"),
)

# The per-position split of each hour's interest (the subsidiary ledger's records), one row per
# position per hour: by far the largest table. On PostgreSQL it is partitioned by range of `ts`, one
# partition per UTC day plus a DEFAULT one (migration 0006, `services.retention`), so dropping a day
# past the retention period is a DROP TABLE; the primary key there is (id, ts), as a partitioned
# table's key must hold the partition key. SQLite keeps one table, pruned by DELETE.
lending_history = sa.Table(
    "lending_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("position_id", sa.BigInteger, nullable=False),
    sa.Column("ccy", sa.String(16), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),  # the hour lent: [ts, ts + 1h)
    sa.Column("amt", Amount, nullable=False),
    sa.Column("earnings", Amount, nullable=False),
    sa.Column("rate", Amount, nullable=False),
)
# A user's records (`market_data.lending_history`, the operator's earnings view): by user on
# PostgreSQL; on SQLite by currency, then user (migration 0016). Settlement writes each currency's
# hour in its own transaction, and SQLite writes every page a transaction touched to the WAL: led
# by the user, one currency's rows land on every page of the index, which was then rewritten once
# per currency; led by the currency, they land on that currency's pages only. The readers name the
# user's currencies (those of the user's positions, whose records these are).
sa.Index("ix_lending_history_user_ts", lending_history.c.user_id, lending_history.c.ts).ddl_if("postgresql")
sa.Index(
    "ix_lending_history_ccy_user_ts", lending_history.c.ccy, lending_history.c.user_id, lending_history.c.ts
).ddl_if("sqlite")
# What the ledger check reads after its checkpoint: the last hour(s), not the whole table.
sa.Index("ix_lending_history_ts", lending_history.c.ts)

clock = sa.Table(
    "clock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("business_anchor", sa.BigInteger, nullable=False),
    sa.Column("real_anchor", sa.BigInteger, nullable=False),
    sa.Column("speed", Amount, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
    one_of("mode", ClockMode),
)

api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("user_account.id"), nullable=False, index=True),
    sa.Column("secret_encrypted", sa.Text, nullable=False),  # under the master key, never in clear
    sa.Column("passphrase_hash", sa.String(255), nullable=False),  # scrypt
    sa.Column("permissions", sa.String(64), nullable=False),  # comma-separated: read,trade
    # comma-separated: where the key works (binance,bitget,okx); Binance signs without the passphrase
    sa.Column("facades", sa.String(64), nullable=False, server_default="binance,bitget,okx"),
    sa.Column("ip_allowlist", sa.Text, nullable=False, default=""),  # comma-separated; empty: any
    sa.Column("expires_at", sa.BigInteger, nullable=True),  # real time, ms
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)
# The keys revoked since a time (`keys.revoked_since`, every API process once a second); partial:
# only revoked keys, which are few. A comparison on `revoked_at` implies the predicate, so both
# databases use it for `revoked_at >= :since`.
KEY_REVOKED = sa.text("revoked_at IS NOT NULL")
partial_index("ix_api_key_revoked", api_key.c.revoked_at, where=KEY_REVOKED)

# --- catalog products (Bitget model) ------------------------------------------------------------

product = sa.Table(
    "earn_product",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("coin", sa.String(16), sa.ForeignKey("currency.ccy"), nullable=False),
    sa.Column("period_type", sa.String(16), nullable=False),
    sa.Column("period_days", sa.Integer, nullable=True),
    sa.Column("apy_type", sa.String(16), nullable=False),
    sa.Column("advance_redeem", sa.Boolean, nullable=False),
    sa.Column("settle_method", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # as the operator set it
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("single_min", Amount, nullable=False),
    sa.Column("single_max", Amount, nullable=False),
    sa.Column("quota", Amount, nullable=True),
    sa.Column("subscribe_precision", sa.Integer, nullable=False),
    sa.Column("profit_precision", sa.Integer, nullable=False),
    sa.Column("redeem_delay_days", sa.Integer, nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=True),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("first_day", sa.BigInteger, nullable=False),  # first day start (16:00 UTC) settled
    # Binance's model: where the real-time APR comes from (`AprSource`; NULL: Bitget's model), and
    # the simulated walk's parameters as JSON ({"low", "high", "step", "seed"}).
    sa.Column("apr_source", sa.String(16), nullable=True),
    sa.Column("apr_walk", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    one_of("period_type", PeriodType),
    one_of("apy_type", ApyType),
    one_of("settle_method", SettleMethod),
    one_of("status", OPERATOR_STATUSES),  # as the operator set it; the others are derived
    one_of("level", Level),
)

product_tier = sa.Table(
    "earn_product_tier",
    metadata,
    sa.Column("product_id", sa.BigInteger, sa.ForeignKey("earn_product.id"), primary_key=True),
    sa.Column("rate_level", sa.Integer, primary_key=True),
    sa.Column("min_step", Amount, nullable=False),
    sa.Column("max_step", Amount, nullable=False),
    sa.Column("apy", Amount, nullable=False),  # percent
)

product_apr = sa.Table(
    "earn_product_apr",
    metadata,
    # Every change of a real-time product's APR (percent), from `ts` (business ms) on.
    sa.Column("product_id", sa.BigInteger, sa.ForeignKey("earn_product.id"), primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("apr", Amount, nullable=False),
)

holding = sa.Table(
    "earn_holding",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("user_account.id"), nullable=False),
    sa.Column("product_id", sa.BigInteger, sa.ForeignKey("earn_product.id"), nullable=False),
    sa.Column("amount", Amount, nullable=False),  # principal (interest is paid out, or accrued)
    sa.Column("accrued", Amount, nullable=False),  # maturity interest not yet paid
    sa.Column("total_profit", Amount, nullable=False),
    sa.Column("last_profit", Amount, nullable=False),
    sa.Column("subscribed_at", sa.BigInteger, nullable=False),
    sa.Column("interest_time", sa.BigInteger, nullable=False),
    sa.Column("expire_time", sa.BigInteger, nullable=True),
    sa.Column("open", sa.Boolean, nullable=False),
    postgresql_with=REWRITTEN_IN_PLACE,
)
sa.Index("ix_earn_holding_product_user", holding.c.product_id, holding.c.open, holding.c.user_id)
sa.Index("ix_earn_holding_user", holding.c.user_id)

earn_order = sa.Table(
    "earn_order",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("product_id", sa.BigInteger, sa.ForeignKey("earn_product.id"), nullable=False),
    sa.Column("holding_id", sa.BigInteger, sa.ForeignKey("earn_holding.id"), nullable=False),
    sa.Column("order_type", sa.String(16), nullable=False),
    sa.Column("amount", Amount, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("arrive_at", sa.BigInteger, nullable=True),  # redemptions: when the funds arrive
    one_of("order_type", OrderType),
    one_of("status", OrderStatus),
)
# A user's orders (`catalog_views`): by user on PostgreSQL; on SQLite by product, then user
# (migration 0017), for the reason `lending_history`'s index is led by the currency: each
# product's day commits alone, and led by the user, its interest orders landed on every page of
# the index. The readers name the user's products (those of the user's holdings: every order is
# a holding's, and has its user and product).
sa.Index("ix_earn_order_user_ts", earn_order.c.user_id, earn_order.c.ts).ddl_if("postgresql")
sa.Index(
    "ix_earn_order_product_user_ts", earn_order.c.product_id, earn_order.c.user_id, earn_order.c.ts
).ddl_if("sqlite")
# Redemptions waiting for their funds to arrive (`catalog_delivery`); partial (migration 0018), so
# settled orders are not in it. Queries use `PROCESSING` itself: its value is literal SQL, so the
# index serves any plan, PostgreSQL's generic plan of a prepared statement too (psycopg prepares a
# statement run often; that plan cannot match `status = $1` against the index's predicate).
PROCESSING = earn_order.c.status == sa.literal_column("'processing'")
# Led by the status all the same: SQLite's planner counts its equality as the index's selectivity;
# with (arrive_at) alone it scans the table in id order instead.
partial_index("ix_earn_order_arrival", earn_order.c.status, earn_order.c.arrive_at, where=PROCESSING)
# A real-time product's day reads its subscriptions and redemptions since the day began, in one
# query; partial, so the millions of interest orders a day writes do not maintain it. A query uses
# it only if its WHERE holds this very predicate as literal SQL (SQLite cannot see that bound
# parameters match it): so queries use `BALANCE_CHANGES` itself.
BALANCE_CHANGES = sa.text("order_type IN ('subscribe', 'redeem')")
partial_index(
    "ix_earn_order_product_changes", earn_order.c.product_id, earn_order.c.ts, where=BALANCE_CHANGES
)

# Which wallets a catalog order took its money from or paid it to, where not `funding` alone
# (Binance's `sourceAccount`, `destAccount`: `domain/earn_wallets.py`), and whether auto-subscribe
# made it; an order without a row was the funding account's alone, asked for by its user.
order_wallet = sa.Table(
    "earn_order_wallet",
    metadata,
    sa.Column("order_id", sa.BigInteger, sa.ForeignKey("earn_order.id"), primary_key=True),
    sa.Column("wallet", sa.String(16), nullable=False),
    sa.Column("funding", Amount, nullable=False),  # of the order's amount: from (or to) funding
    sa.Column("trading", Amount, nullable=False),  # and from (or to) trading
    sa.Column("auto", sa.Boolean, nullable=False),  # made by auto-subscribe
    one_of("wallet", Wallet),
)

# A user's flexible products with auto-subscribe on (Binance's `setAutoSubscribe`): their funding
# balance of the product's coin is swept into it (`services/earn_wallets.py`).
auto_subscribe = sa.Table(
    "earn_auto_subscribe",
    metadata,
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("user_account.id"), primary_key=True),
    sa.Column("product_id", sa.BigInteger, sa.ForeignKey("earn_product.id"), primary_key=True),
    sa.Column("since", sa.BigInteger, nullable=False),  # business time it was turned on
)

product_day = sa.Table(
    "earn_product_day",
    metadata,
    sa.Column("product_id", sa.BigInteger, sa.ForeignKey("earn_product.id"), primary_key=True),
    # The primary key is what makes each (product, day) settle exactly once.
    sa.Column("day", sa.BigInteger, primary_key=True),
    sa.Column("holdings", sa.Integer, nullable=False),
    sa.Column("interest", Amount, nullable=False),
    sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("journal_entry.id"), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

reference_price = sa.Table(
    "reference_price",
    metadata,
    sa.Column("ccy", sa.String(16), sa.ForeignKey("currency.ccy"), primary_key=True),
    sa.Column("usdt", Amount, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# --- operator surface: demand posted by the margin engine, the admin audit log ------------------

demand_post = sa.Table(
    "demand_post",
    metadata,
    sa.Column("ccy", sa.String(16), sa.ForeignKey("market.ccy"), primary_key=True),
    # One post per (currency, hour); a new post for an unsettled hour replaces the old one.
    sa.Column("hour", sa.BigInteger, primary_key=True),
    sa.Column("demand", Amount, nullable=False),  # borrowed amount for [hour, hour + 1h)
    sa.Column("borrow_rate", Amount, nullable=False),  # r_b, for pro-rata markets
    sa.Column("posted_at", sa.BigInteger, nullable=False),
    sa.Column("posted_by", sa.String(128), nullable=False),
    sa.CheckConstraint("hour = (hour / 3600000) * 3600000", name="on_the_hour"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", sa.BigInteger, nullable=False),  # real time, ms
    sa.Column("actor", sa.String(128), nullable=False),  # X-Admin-Actor, else the token's name
    sa.Column("token", sa.String(64), nullable=False),  # the name of the admin token used
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),  # the request body, secrets redacted, truncated
    sa.Column("status", sa.Integer, nullable=False),  # the HTTP status answered
    sa.Column("error", sa.String(64), nullable=False, default=""),  # the error code, if refused
    sa.Column("request_id", sa.String(64), nullable=False),
)
sa.Index("ix_audit_log_at", audit_log.c.at)

# --- production: admin idempotency keys, the settler's lease ------------------------------------

idempotency_key = sa.Table(
    "idempotency_key",
    metadata,
    # One key per admin token: two operators' keys never collide.
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),  # the HTTP status first answered
    sa.Column("response", sa.Text, nullable=False),  # the body first answered
    sa.Column("created_at", sa.BigInteger, nullable=False),  # real time, ms
)
sa.Index("ix_idempotency_key_created_at", idempotency_key.c.created_at)

worker_lease = sa.Table(
    "worker_lease",
    metadata,
    # A named role (e.g. "settler") held by one process at a time until `expires_at`.
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),  # host:pid:random of the holder
    sa.Column("acquired_at", sa.BigInteger, nullable=False),  # real time, ms
    sa.Column("expires_at", sa.BigInteger, nullable=False),  # real time, ms
)

# --- data growth: ledger checkpoints, history retention -----------------------------------------

ledger_checkpoint = sa.Table(
    "ledger_checkpoint",
    metadata,
    # What a green ledger check verified, in the snapshot it verified: the next check verifies
    # only what came after it. Each position's (amt, earnings) and each account's total are in the
    # tables `ledger_checkpoint_positions_<id>` and `ledger_checkpoint_accounts_<id>`, created with
    # it and dropped when superseded (`services.ledger_check`).
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    # Every journal entry with id <= entry_id, less `gaps`, is in the figures.
    sa.Column("entry_id", sa.BigInteger, nullable=False),
    # Comma-separated ids <= entry_id not committed then, whose transaction may still commit.
    sa.Column("gaps", sa.Text, nullable=False, default=""),
    # JSON {ccy: last settled hour}: lending history with ts < that hour is in the figures.
    sa.Column("hours", sa.Text, nullable=False),
    sa.Column("positions", sa.BigInteger, nullable=False),
    sa.Column("accounts", sa.BigInteger, nullable=False),
    sa.Column("business_at", sa.BigInteger, nullable=False),  # business time of the check
    sa.Column("created_at", sa.BigInteger, nullable=False),  # real time, ms
    sa.Column("dropped_at", sa.BigInteger, nullable=True),  # its figures' tables were dropped
)

history_horizon = sa.Table(
    "history_horizon",
    metadata,
    # Per history table ("lending_history", "market_hour"): rows with ts/hour before `before` may
    # have been pruned; `checkpoint_id` held their figures when they were (the full check's base).
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("before", sa.BigInteger, nullable=False),
    sa.Column("checkpoint_id", sa.BigInteger, sa.ForeignKey("ledger_checkpoint.id"), nullable=False),
    sa.Column("pruned_at", sa.BigInteger, nullable=False),  # real time, ms
)

# Settlement of one period shared by user-id range (services/settlement/period.py). A period being
# settled in ranges is *open*: its row here holds the plan every range applies (the hour's match
# rule and figures), and trading in its currency or product waits until it is closed. Both tables
# hold open periods only: closing a period writes its `market_hour`/`product_day` row (the
# period's exactly-once key) and deletes these rows in the same transaction.
settlement_open = sa.Table(
    "settlement_open",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),  # "hour" (a market) or "day" (a product)
    sa.Column("key", sa.String(32), primary_key=True),  # the currency or the product id
    sa.Column("period", sa.BigInteger, primary_key=True),
    sa.Column("plan", sa.Text, nullable=False),  # JSON
    sa.Column("opened_at", sa.BigInteger, nullable=False),  # real time, ms
    one_of("kind", PeriodKind),
)

settlement_range = sa.Table(
    "settlement_range",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("period", sa.BigInteger, primary_key=True),
    sa.Column("range_no", sa.Integer, primary_key=True),
    sa.Column("lo", sa.BigInteger, nullable=True),  # user ids >= lo (none: from the first)
    sa.Column("hi", sa.BigInteger, nullable=True),  # user ids < hi (none: to the last)
    # Set in the transaction that applies the range: what makes each range apply exactly once.
    sa.Column("applied_at", sa.BigInteger, nullable=True),
    sa.Column("applied_by", sa.String(128), nullable=False, default=""),
    sa.Column("items", sa.Integer, nullable=False, default=0),  # positions or holdings paid
    sa.Column("interest", Amount, nullable=False, default=ZERO),
    sa.Column("lent", Amount, nullable=False, default=ZERO),  # hours: what its positions lend now
    sa.Column("expired", sa.Integer, nullable=False, default=0),  # days: fixed holdings returned
    sa.ForeignKeyConstraint(
        ["kind", "key", "period"],
        ["settlement_open.kind", "settlement_open.key", "settlement_open.period"],
    ),
)

# The replay window when no Redis is configured: the digest of every signature accepted by any API
# process, until it could no longer verify (services/replays.py).
seen_signature = sa.Table(
    "seen_signature",
    metadata,
    sa.Column("digest", sa.String(77), primary_key=True),  # when signed (ms, 13 digits), sha256 hex
    sa.Column("expires_at", sa.BigInteger, nullable=False),  # wall clock, ms
)
sa.Index("ix_seen_signature_expires_at", seen_signature.c.expires_at)
