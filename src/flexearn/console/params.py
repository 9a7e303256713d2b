"""Parameter types for what a person types, and the command class every subcommand uses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import click

from flexearn.domain.errors import FlexearnError
from flexearn.domain.money import AMOUNT_RULE, parse_amount
from flexearn.domain.vocabulary import values


class DecimalType(click.ParamType[Decimal, Any]):
    """An amount or rate, by the wire's one amount grammar (so never negative)."""

    name = "decimal"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        if isinstance(value, Decimal):
            return value
        try:
            return parse_amount(str(value))
        except FlexearnError:
            self.fail(f"{value!r} is not {AMOUNT_RULE}", param, ctx)


class CurrencyType(click.ParamType[str, Any]):
    """A currency code in any case (`usdt`), read as the engine writes it (`USDT`)."""

    name = "currency"
    CODE = re.compile(r"[A-Za-z0-9]{1,16}")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not self.CODE.fullmatch(text):
            self.fail(f"{text!r} is not a currency code (letters and digits, e.g. USDT)", param, ctx)
        return text.upper()


class TimeType(click.ParamType[int, Any]):
    """A moment in ISO 8601 (`2026-12-01`, `2026-12-01T20:00`, seconds optional), UTC unless it
    names its offset; read as epoch milliseconds."""

    name = "time"
    METAVAR = "YYYY-MM-DD[THH:MM[:SS]]"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.METAVAR

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a time like 2026-12-01T20:00 (UTC)", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)


def choice(members: Iterable[StrEnum]) -> click.Choice[str]:
    """A choice among a domain vocabulary's values (click would offer an enum's member names)."""
    return click.Choice(values(members))


DECIMAL = DecimalType()
CURRENCY = CurrencyType()
TIME = TimeType()

NEGATIVE = re.compile(r"-\.?[0-9]")


class Command(click.Command):
    """A command that tells a negative number for what it is: click would read `-5` as an
    unknown option ("No such option '-5'")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _refuse_negative_numbers(self.params, args)
        return super().parse_args(ctx, args)


def _refuse_negative_numbers(params: Sequence[click.Parameter], args: Sequence[str]) -> None:
    takes_value = {
        name
        for p in params
        if isinstance(p, click.Option) and not p.is_flag and not p.count
        for name in p.opts
    }
    for before, arg in zip(["", *args], args, strict=False):
        if before == "--":
            return
        if NEGATIVE.match(arg) and before not in takes_value:
            raise click.UsageError(f"{arg} is negative: amounts, rates and counts are positive numbers")


class Group(click.Group):
    """A group whose subcommands and subgroups are of these classes too."""

    command_class = Command
    group_class = type
