"""Every identifier kind, declared once.

A :class:`Kind` says where its raw text comes from (a requests column, an accounts
column, or both), how it is normalised, which signup evidence family it belongs to
and its signup velocity limit.  Every path iterates :data:`KINDS`: the SQL of the
identifiers stage on DuckDB and Spark (:mod:`linkage.identifiers.sql`), the batch
signup identifiers and the one-row signup scorer (:mod:`linkage.signup`).

Normalisation comes in two forms:

- a **SQL expression** (``Kind.sql``, with ``{x}`` for the raw column) where plain
  SQL accepted by both DuckDB and Spark can state it (trim, ASCII lower-casing,
  empty → unknown), with its one-value Python twin (``Kind.one``);
- a **per-distinct-value normaliser** (:class:`ValueMap`) where it cannot (canonical
  IPv6 text and /48 subnets, e-mail provider aliasing, user-agent family regexes):
  the engine lists the distinct raw values, :attr:`ValueMap.many` maps that small
  table in Python, the mapping is registered and joined back in SQL.
  :attr:`ValueMap.one` is the same normalisation for one value (the signup hot
  path); one map can feed several kinds (an IP gives ``ip`` and ``subnet``) and
  per-account attributes (the e-mail flags).

``template`` and ``topic`` are columns the stage itself writes (from the template
and prompt-signal modules), already normalised.

Both SQL and Python trim exactly the characters Python's ``str.strip()`` removes
(:data:`WHITESPACE`) and lower-case ASCII letters only: SQL ``LOWER`` follows a
different Unicode case table in each engine, an explicit ``TRANSLATE`` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from linkage.identifiers.device import (
    UA_OTHER,
    fingerprint_one,
    user_agent_family,
    user_agent_family_one,
)
from linkage.identifiers.emails import FREEMAIL_DOMAINS, email_one, normalize_emails
from linkage.identifiers.network import canonical_ip, ip_and_subnet, subnet_of
from linkage.settings import IdentifierSettings

__all__ = [
    "EXTRA_PREFIX",
    "FAMILIES",
    "KINDS",
    "VALUE_MAPS",
    "VELOCITY_LIMITS",
    "WHITESPACE",
    "Kind",
    "ValueMap",
    "kind",
    "sql_fingerprint",
    "sql_trim",
    "trim_one",
]

#: Every character Python's ``str.strip()`` removes (``str.isspace``), in code point order.
WHITESPACE: str = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"

#: Prefix of the kinds of the optional identifiers table (``x:phone``).
EXTRA_PREFIX = "x:"


def _sql_plain(x: str) -> str:
    """SQL: ``x`` is non-empty and neither starts nor ends with :data:`WHITESPACE` (the
    common case, tested far faster than ``TRIM`` with a character set runs)."""
    return (
        f"{x} <> '' AND INSTR('{WHITESPACE}', LEFT({x}, 1)) = 0 "
        f"AND INSTR('{WHITESPACE}', RIGHT({x}, 1)) = 0"
    )


def sql_trim(x: str) -> str:
    """SQL: ``x`` without leading/trailing :data:`WHITESPACE`, empty → NULL (both engines)."""
    return (
        f"CASE WHEN {_sql_plain(x)} THEN {x} "
        f"ELSE NULLIF(TRIM(BOTH '{WHITESPACE}' FROM {x}), '') END"
    )


def sql_fingerprint(x: str) -> str:
    """SQL: :func:`sql_trim` with ASCII letters lower-cased.  ``x = LOWER(x)`` means no
    ASCII capital in ``x`` in any engine (whatever else its ``LOWER`` changes), so the
    ``TRANSLATE`` can be skipped."""
    return (
        f"CASE WHEN {x} = LOWER({x}) AND {_sql_plain(x)} THEN {x} "
        f"ELSE NULLIF(TRANSLATE(TRIM(BOTH '{WHITESPACE}' FROM {x}), "
        f"'{_ASCII_UPPER}', '{_ASCII_LOWER}'), '') END"
    )


def trim_one(raw: str) -> str | None:
    """Python twin of :func:`sql_trim`."""
    return raw.strip() or None


@dataclass(frozen=True)
class ValueMap:
    """A normaliser run on the distinct raw values of one source, outside SQL.

    ``many(distinct, settings)``: a string Series of distinct raw values → a frame with
    one column per name in ``columns`` (same index; string for kind values, nullable
    boolean for attributes; ``<NA>`` = unknown).  ``one(raw, settings)``: the same for
    one value, as a dict (None = unknown).
    """

    name: str
    columns: tuple[str, ...]
    many: Callable[[pd.Series, IdentifierSettings], pd.DataFrame]
    one: Callable[[str, IdentifierSettings], Mapping[str, object]]


def _ip_many(raw: pd.Series, settings: IdentifierSettings) -> pd.DataFrame:
    ip, subnet = ip_and_subnet(raw, v4_prefix=settings.ipv4_prefix, v6_prefix=settings.ipv6_prefix)
    return pd.DataFrame({"ip": ip, "subnet": subnet}, index=raw.index)


def _ip_one(raw: str, settings: IdentifierSettings) -> dict[str, object]:
    ip = canonical_ip(raw)
    sub = None if ip is None else subnet_of(ip, settings.ipv4_prefix, settings.ipv6_prefix)
    return {"ip": ip, "subnet": sub}


def _email_many(raw: pd.Series, settings: IdentifierSettings) -> pd.DataFrame:
    mail = normalize_emails(raw)
    # A freemail domain (gmail.com, outlook.com, …) is shared by millions of strangers:
    # it links nobody, so it is no email_domain value (the flag stays an attribute).
    domain = mail["domain"].mask(mail["freemail"].fillna(False).to_numpy(bool))
    return pd.DataFrame(
        {
            "email": mail["canonical"],
            "email_domain": domain,
            "email_disposable": mail["disposable"],
            "email_alias": mail["alias"],
            "email_freemail": mail["freemail"],
        },
        index=raw.index,
    )


def _email_one(raw: str, settings: IdentifierSettings) -> dict[str, object]:
    canonical, domain, alias, disposable = email_one(raw)
    freemail = None if domain is None else domain in FREEMAIL_DOMAINS
    return {
        "email": canonical,
        "email_domain": None if domain is None or freemail else domain,
        "email_disposable": disposable,
        "email_alias": alias,
        "email_freemail": freemail,
    }


def _ua_many(raw: pd.Series, settings: IdentifierSettings) -> pd.DataFrame:
    # "other" lumps every unrecognised UA together: not a shared identifier.
    fam = user_agent_family(raw)
    return pd.DataFrame({"user_agent": fam.mask(fam == UA_OTHER)}, index=raw.index)


def _ua_one(raw: str, settings: IdentifierSettings) -> dict[str, object]:
    fam = user_agent_family_one(raw)
    return {"user_agent": None if fam == UA_OTHER else fam}


#: The per-distinct-value normalisers, by name.
VALUE_MAPS: dict[str, ValueMap] = {
    m.name: m
    for m in (
        ValueMap("ip", ("ip", "subnet"), _ip_many, _ip_one),
        ValueMap(
            "email",
            ("email", "email_domain", "email_disposable", "email_alias", "email_freemail"),
            _email_many,
            _email_one,
        ),
        ValueMap("user_agent", ("user_agent",), _ua_many, _ua_one),
    )
}


@dataclass(frozen=True)
class Kind:
    """One identifier kind.

    - ``request_column`` / ``accounts_column``: raw source columns (None: not there);
      a kind with both makes one edge per (account, value) from the requests and the
      sign-up attribute together (the sign-up is one observation at ``created_at``);
    - ``sql`` (``{x}`` = raw column) with its Python twin ``one``, or ``value_map``
      (the :data:`VALUE_MAPS` entry whose column of this kind's name is the value);
      neither: the column is already normalised (written by the stage itself);
    - ``family``: signup evidence family (one vote per family: an IP and its subnet
      are not independent evidence); ``velocity_limit``: signups sharing one value
      within the velocity window that make it suspicious (None: not counted);
    - ``edges``: makes account–identifier edges (``topic`` only feeds a feature).
    """

    name: str
    request_column: str | None = None
    accounts_column: str | None = None
    sql: str | None = None
    one: Callable[[str], str | None] | None = None
    value_map: str | None = None
    family: str = "other"
    velocity_limit: int | None = None
    edges: bool = True

    def sql_value(self, x: str, mapped: str) -> str:
        """SQL of the normalised value of raw column ``x`` (``mapped``: the joined
        value map's column, for a ``value_map`` kind)."""
        if self.value_map is not None:
            return mapped
        if self.sql is not None:
            return self.sql.format(x=x)
        return x

    def normalize_one(self, raw: str, settings: IdentifierSettings) -> str | None:
        """The normalised value of one raw text (None = unknown)."""
        if self.value_map is not None:
            return VALUE_MAPS[self.value_map].one(raw, settings)[self.name]  # type: ignore[return-value]
        if self.one is not None:
            return self.one(raw)
        return raw


# Velocity limits follow common per-identifier limits: a card/device/mailbox is personal
# (5 new accounts in 10 minutes is not a family), a subnet or domain is shared (offices,
# campuses), so it needs far more.  The order is the signup scorer's key order.
KINDS: tuple[Kind, ...] = (
    Kind("ip", "ip", "signup_ip", value_map="ip", family="network"),
    Kind("subnet", "ip", "signup_ip", value_map="ip", family="network", velocity_limit=25),
    Kind(
        "device",
        "device_fingerprint",
        "device_fingerprint",
        sql=sql_fingerprint("{x}"),
        one=fingerprint_one,
        family="device",
        velocity_limit=5,
    ),
    Kind(
        "payment",
        None,
        "payment_fingerprint",
        sql=sql_trim("{x}"),
        one=trim_one,
        family="payment",
        velocity_limit=4,
    ),
    Kind("user_agent", None, "user_agent", value_map="user_agent", family="device"),
    Kind("email", None, "email", value_map="email", family="email", velocity_limit=3),
    Kind("email_domain", None, "email", value_map="email", family="email", velocity_limit=25),
    Kind("template", "template"),
    Kind("topic", "topic", edges=False),
)

_BY_NAME = {k.name: k for k in KINDS}

#: Signup evidence family per kind (``other`` for anything undeclared, e.g. ``x:`` kinds).
FAMILIES: dict[str, str] = {k.name: k.family for k in KINDS}

#: Signup velocity limit per kind that has one.
VELOCITY_LIMITS: dict[str, int] = {
    k.name: k.velocity_limit for k in KINDS if k.velocity_limit is not None
}


def kind(name: str) -> Kind:
    """The declaration of ``name`` (KeyError if undeclared)."""
    return _BY_NAME[name]
