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

Beyond normalisation a kind declares what the later stages do with it, so that they
iterate this module instead of naming kinds:

- its **family** (:data:`LINK_FAMILIES`): one independent piece of evidence for the
  graph's cluster features, the coordination score, the evidence records and the
  signup vote (an IP and its /24 are one family, not two);
- its **velocity limit** at sign-up, and whether the **signup** scorer and index use it
  (every kind with an accounts column);
- its place in the **public edge order** (``edge_rank``: the order of the data
  contract; undeclared kinds follow by name);
- whether it is **shared** with partner providers (``share_rank``: the order of
  :data:`linkage.share.settings.SHARED_KINDS`) and whether its value names one customer
  (``personal``);
- its **roles** (:data:`ROLES`): the per-account features the identifiers stage derives
  from it (``n_<kind>s``, ``<kind>_churn``, ``<kind>_missing``, ...), and the cues the
  score reads from it (proxy exposure and exits, the card, the organisation's domain);
- its **wording** in evidence summaries; whether the FRAUDAR **peer** reads its raw
  columns.

Kinds of the optional ``identifiers`` table are the provider's own (friends, phones,
wallets): they are namespaced with :data:`EXTRA_PREFIX` (:func:`provider_kind`,
:func:`is_provider_kind`) and are each their own coordination family.

Both SQL and Python trim exactly the characters Python's ``str.strip()`` removes
(:data:`WHITESPACE`) and lower-case ASCII letters only: SQL ``LOWER`` follows a
different Unicode case table in each engine, an explicit ``TRANSLATE`` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
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
    "LINK_FAMILIES",
    "OTHER_FAMILY",
    "PROVIDER_ROLES",
    "PROVIDER_WORDING",
    "ROLES",
    "SIGNUP_KINDS",
    "VALUE_MAPS",
    "VELOCITY_LIMITS",
    "WHITESPACE",
    "Family",
    "Kind",
    "ValueMap",
    "edge_order_key",
    "family_evidence",
    "has_role",
    "independent_family",
    "is_provider_kind",
    "kind",
    "kinds_with",
    "link_family",
    "markdown_table",
    "peer_columns",
    "provider_kind",
    "provider_mask",
    "sql_fingerprint",
    "sql_trim",
    "the_kind",
    "trim_one",
    "wording",
]

#: Every character Python's ``str.strip()`` removes (``str.isspace``), in code point order.
WHITESPACE: str = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"

#: Prefix of the kinds of the optional identifiers table (``x:phone``): the provider's
#: own identifiers, namespaced so that they never collide with a declared kind.
EXTRA_PREFIX = "x:"


def provider_kind(name: str) -> str:
    """The kind of identifiers-table kind ``name`` (``phone`` → ``x:phone``)."""
    return EXTRA_PREFIX + name


def is_provider_kind(name: str) -> bool:
    """Whether ``name`` is a kind of the optional identifiers table (``x:…``)."""
    return name.startswith(EXTRA_PREFIX)


def provider_mask(names: Iterable[object] | np.ndarray | pd.Series) -> np.ndarray:
    """Vectorised :func:`is_provider_kind` (a bool array, one per name)."""
    arr = np.asarray(names if isinstance(names, np.ndarray | pd.Series) else list(names))
    return np.char.startswith(arr.astype(str), EXTRA_PREFIX)


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
class Family:
    """One independent family of identifiers (its kinds are not independent evidence).

    ``evidence``: the evidence kind (:mod:`linkage.explain.evidence`) its cluster link
    features are reported under; ``wording``: how a summary names it.
    """

    name: str
    evidence: str
    wording: str


#: The link families, in the order of the cluster features ``c_link_<family>``; ``other``
#: holds every kind without a family of its own (and the provider's ``x:`` kinds, which
#: the coordination score nevertheless counts each as its own family).
LINK_FAMILIES: tuple[Family, ...] = (
    Family("network", "shared_network", "network"),
    Family("payment", "shared_payment", "payment"),
    Family("device", "shared_device", "device"),
    Family("email", "shared_email", "email"),
    Family("template", "templates", "template"),
    Family("other", "shared_other", "other"),
)
OTHER_FAMILY = "other"

#: What a kind can be used for beyond linking (``Kind.roles``).  The first five name the
#: per-account features of the identifiers stage; the rest are cues of the score.
ROLES: dict[str, str] = {
    "count": "feature `n_<kind>s`: distinct values the account used",
    "churn": "feature `<kind>_churn`: distinct values per observation",
    "top_share": "feature `<kind>_top_share`: share of its observations on its top value",
    "repetition": "feature `<kind>_repetition`: 1 - distinct values per observation",
    "missing": "feature `<kind>_missing`: the account has no value (NaN if no account has)",
    "exposure": "ties shared with outsiders count as proxy exposure",
    "exit": "values shared both inside the cluster and with outsiders are proxy exits",
    "card": "one payer: distinct values per member, the organisation card",
    "org_domain": "an organisation's own domain: openness, cards paid behind it",
    "template_ids": "its column is the template module's template id of each request",
    "topic_ids": "its column is the prompt-signal module's topic of each request",
}

#: Roles of every provider (``x:``) kind: bots befriend strangers to blend in, so their
#: ties shared with outsiders are exposure like an IP's.
PROVIDER_ROLES: frozenset[str] = frozenset({"exposure"})
#: How evidence summaries name the provider's kinds.
PROVIDER_WORDING = "provider-identifier"


@dataclass(frozen=True)
class Kind:
    """One identifier kind.

    - ``request_column`` / ``accounts_column``: raw source columns (None: not there);
      a kind with both makes one edge per (account, value) from the requests and the
      sign-up attribute together (the sign-up is one observation at ``created_at``);
      a kind with an accounts column is a **signup** kind (scored at sign-up, written
      to the run's signup index);
    - ``sql`` (``{x}`` = raw column) with its Python twin ``one``, or ``value_map``
      (the :data:`VALUE_MAPS` entry whose column of this kind's name is the value);
      neither: the column is already normalised (written by the stage itself);
    - ``family``: its :data:`LINK_FAMILIES` entry (one vote per family: an IP and its
      subnet are not independent evidence); ``velocity_limit``: signups sharing one
      value within the velocity window that make it suspicious (None: not counted);
    - ``edges``: makes account–identifier edges (``topic`` only feeds a feature);
      ``edge_rank``: its place in the public edge order (None: after the ranked kinds,
      by name);
    - ``share_rank``: shared with partner providers as keyed hashes in indicator bundles
      (:mod:`linkage.share`), at this place in the order matched kinds are reported in
      (None: never shared, like a raw IP: a network goes as its subnet); ``personal``:
      its value names one customer (a card, a mailbox, a device), unlike a range, a
      domain or a template that strangers share by nature: a partner's match on it
      alone may reach review (capped below block), not only half of it;
    - ``roles``: names from :data:`ROLES`; ``wording``: its name in evidence summaries;
      ``peer``: the FRAUDAR peer reads its raw columns verbatim as an identifier.
    """

    name: str
    request_column: str | None = None
    accounts_column: str | None = None
    sql: str | None = None
    one: Callable[[str], str | None] | None = None
    value_map: str | None = None
    family: str = OTHER_FAMILY
    velocity_limit: int | None = None
    edges: bool = True
    edge_rank: int | None = None
    share_rank: int | None = None
    personal: bool = False
    roles: frozenset[str] = frozenset()
    wording: str | None = None
    peer: bool = False

    @property
    def signup(self) -> bool:
        """Scored at sign-up (and kept in the run's signup index)."""
        return self.accounts_column is not None

    @property
    def written_by_stage(self) -> bool:
        """Its column is written by the identifiers stage itself, already normalised."""
        return self.sql is None and self.value_map is None

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """``(table, raw column)`` it is read from: requests first, then accounts."""
        out = []
        if self.request_column is not None:
            out.append(("requests", self.request_column))
        if self.accounts_column is not None:
            out.append(("accounts", self.accounts_column))
        return tuple(out)

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
# campuses), so it needs far more.  The order is the signup scorer's key order (it breaks
# ties between clusters and orders the evidence); ``edge_rank`` is the data contract's.
KINDS: tuple[Kind, ...] = (
    Kind(
        "ip",
        "ip",
        "signup_ip",
        value_map="ip",
        family="network",
        edge_rank=0,
        roles=frozenset({"count", "churn", "exposure", "exit"}),
        wording="IP",
        peer=True,
    ),
    Kind(
        "subnet",
        "ip",
        "signup_ip",
        value_map="ip",
        family="network",
        velocity_limit=25,
        edge_rank=1,
        share_rank=3,
        roles=frozenset({"count"}),
        wording="subnet",
    ),
    Kind(
        "device",
        "device_fingerprint",
        "device_fingerprint",
        sql=sql_fingerprint("{x}"),
        one=fingerprint_one,
        family="device",
        velocity_limit=5,
        edge_rank=4,
        share_rank=4,
        personal=True,
        roles=frozenset({"count", "churn", "missing"}),
        wording="device",
        peer=True,
    ),
    Kind(
        "payment",
        None,
        "payment_fingerprint",
        sql=sql_trim("{x}"),
        one=trim_one,
        family="payment",
        velocity_limit=4,
        edge_rank=5,
        share_rank=0,
        personal=True,
        roles=frozenset({"missing", "card"}),
        wording="card",
        peer=True,
    ),
    Kind(
        "user_agent",
        None,
        "user_agent",
        value_map="user_agent",
        family="device",
        edge_rank=6,
        wording="user agent",
    ),
    Kind(
        "email",
        None,
        "email",
        value_map="email",
        family="email",
        velocity_limit=3,
        edge_rank=2,
        share_rank=1,
        personal=True,
        wording="mailbox",
        peer=True,
    ),
    Kind(
        "email_domain",
        None,
        "email",
        value_map="email",
        family="email",
        velocity_limit=25,
        edge_rank=3,
        share_rank=2,
        roles=frozenset({"org_domain"}),
        wording="e-mail domain",
    ),
    # template ties are a family of their own everywhere they are read (cluster features,
    # coordination, evidence); a template is never seen at sign-up
    Kind(
        "template",
        "template",
        family="template",
        edge_rank=7,
        share_rank=5,
        roles=frozenset({"count", "top_share", "repetition", "template_ids"}),
        wording="prompt template",
    ),
    Kind(
        "topic", "topic", edges=False, roles=frozenset({"top_share", "topic_ids"}), wording="topic"
    ),
)

_BY_NAME = {k.name: k for k in KINDS}
_FAMILY_BY_NAME = {f.name: f for f in LINK_FAMILIES}

#: Family per declared kind (:func:`link_family` for any kind).
FAMILIES: dict[str, str] = {k.name: k.family for k in KINDS}

#: Signup velocity limit per kind that has one.
VELOCITY_LIMITS: dict[str, int] = {
    k.name: k.velocity_limit for k in KINDS if k.velocity_limit is not None
}

#: Kinds scored at sign-up and kept in the run's signup index, in the scorer's key order.
SIGNUP_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS if k.signup)


def kind(name: str) -> Kind:
    """The declaration of ``name`` (KeyError if undeclared)."""
    return _BY_NAME[name]


def kinds_with(role: str) -> tuple[str, ...]:
    """Declared kinds with ``role`` (a :data:`ROLES` key), in declaration order."""
    if role not in ROLES:
        raise KeyError(role)
    return tuple(k.name for k in KINDS if role in k.roles)


def the_kind(role: str) -> str:
    """The one declared kind with ``role`` (ValueError unless exactly one has it)."""
    names = kinds_with(role)
    if len(names) != 1:
        raise ValueError(f"role {role!r} is declared on {len(names)} kinds: {names}")
    return names[0]


def has_role(name: str, role: str) -> bool:
    """Whether kind ``name`` (declared or ``x:``) has ``role``."""
    if is_provider_kind(name):
        return role in PROVIDER_ROLES
    k = _BY_NAME.get(name)
    return k is not None and role in k.roles


def link_family(name: str) -> str:
    """The link family of any kind: its declared family, ``other`` for the rest
    (undeclared and provider kinds)."""
    k = _BY_NAME.get(name)
    return OTHER_FAMILY if k is None or is_provider_kind(name) else k.family


def independent_family(name: str) -> str:
    """The coordination score's family: provider kinds are each their own family (a
    friend list and a phone are independent evidence), an undeclared kind
    ``other:<kind>``, a declared one its family."""
    if is_provider_kind(name):
        return name
    k = _BY_NAME.get(name)
    return f"{OTHER_FAMILY}:{name}" if k is None else k.family


def family_evidence() -> dict[str, str]:
    """Evidence kind per link family (``shared_network`` ...)."""
    return {f.name: f.evidence for f in LINK_FAMILIES}


def wording(name: str) -> str:
    """How evidence summaries name kind ``name``."""
    if is_provider_kind(name):
        return PROVIDER_WORDING
    k = _BY_NAME.get(name)
    return name if k is None or k.wording is None else k.wording


def edge_order_key(name: str) -> tuple[bool, int, str]:
    """Sort key of the public edge order: ranked kinds by rank, then the others by name."""
    k = _BY_NAME.get(name)
    rank = None if k is None else k.edge_rank
    return (rank is None, rank or 0, name)


def peer_columns() -> tuple[tuple[str, str, str], ...]:
    """``(table, column, kind)`` the FRAUDAR peer reads verbatim: requests first."""
    return tuple(
        (table, column, k.name)
        for t in ("requests", "accounts")
        for k in KINDS
        if k.peer
        for table, column in k.columns
        if table == t
    )


def markdown_table() -> str:
    """The declaration as the Markdown table of docs/MODEL.md (a test keeps them equal)."""

    def normaliser(k: Kind) -> str:
        if k.value_map is not None:
            return f"`{k.value_map}` map"
        if k.sql is not None:
            return "SQL + Python twin"
        return "written by the stage"

    def sources(k: Kind) -> str:
        return ", ".join(f"`{t}.{c}`" for t, c in k.columns)

    def shared(k: Kind) -> str:
        if k.share_rank is None:
            return "no"
        return f"yes ({k.share_rank}{', personal' if k.personal else ''})"

    rows = [
        "| kind | sources | normaliser | family | signup | velocity limit | edges (rank) "
        "| shared with partners (rank) | roles |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in KINDS:
        edges = "no" if not k.edges else ("yes" if k.edge_rank is None else f"yes ({k.edge_rank})")
        rows.append(
            f"| `{k.name}` | {sources(k)} | {normaliser(k)} | {k.family} | "
            f"{'yes' if k.signup else 'no'} | {k.velocity_limit or '–'} | {edges} | {shared(k)} | "
            f"{', '.join(r for r in ROLES if r in k.roles) or '–'} |"
        )
    rows.append(
        f"| `{EXTRA_PREFIX}<kind>` | `identifiers.kind`, `identifiers.value` | trimmed | "
        f"its own (coordination), {OTHER_FAMILY} (features) | yes (the signup's identifiers) "
        "| – | yes (by name) | no | "
        f"{', '.join(sorted(PROVIDER_ROLES))} |"
    )
    roles = [f"- `{r}`: {what}" for r, what in ROLES.items()]
    return "\n".join([*rows, "", "Roles:", "", *roles]) + "\n"
