"""Per-prompt content signals: reasoning requests, topic, length.

Distillation campaigns concentrate on narrow capabilities (coding, tool use,
maths) and very often ask for the reasoning behind an answer (chain-of-thought
elicitation). These signals feed per-account features such as
``reasoning_share`` and ``topic_top_share``.

All rules are case-insensitive regexes evaluated with pyarrow (RE2) on the
*unique* prompts and mapped back, so the cost is one scan per rule over the
distinct text. The rules are keyword heuristics, deliberately simple and
explainable: they are evidence for an analyst, not a classifier of record.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkage.identifiers._parallel import map_chunks
from linkage.identifiers.arrow_text import as_arrow

__all__ = ["TOPICS", "prompt_signals"]

# Only the head of a prompt is scanned: instructions sit at the start or the
# end of short prompts, and a pasted 100 kB document would dominate the cost.
_SCAN_CHARS = 4000

# Requests for step-by-step reasoning / chain of thought and paraphrases.
# Each alternative needs an explicit reasoning verb and object, so ordinary
# prompts that merely mention "steps" or "reason" do not match.
_REASONING = "(?i)" + "|".join(
    [
        r"step[- ]by[- ]step",
        r"\bstep[- ]wise\b",
        r"chain[- ]of[- ]thoughts?",
        r"\bcot\b",
        r"show (?:all |me )?(?:your|the|each) (?:work|working|steps|reasoning|derivation)",
        r"(?:explain|describe|walk (?:me )?through|justify|outline|detail) (?:your|the|each of your) "
        r"(?:reasoning|thought process|thinking|logic|steps)",
        r"think (?:it |this )?(?:through|carefully|out loud|aloud)",
        r"reason (?:it |this )?(?:through|carefully|step)",
        r"(?:before|then) (?:giving|answering|the final answer)[^.]{0,40}(?:reason|think|explain)",
        r"(?:let'?s|let us) think",
        r"(?:your|the|full|detailed|complete) (?:reasoning|thought process|derivation|reasoning trace)",
        r"<think>|<reasoning>|\bscratchpad\b",
        r"break (?:it|this|the problem) down",
    ]
)

# Topic rules in priority order: the first that matches wins. Tool use is
# checked before coding (agentic prompts mention code too), maths before
# writing ("write a proof"), translation before writing ("write it in French").
TOPICS: tuple[str, ...] = ("coding", "tool_use", "math", "writing", "translation", "chat", "other")
_TOPIC_RULES: tuple[tuple[str, str], ...] = (
    (
        "tool_use",
        r"(?i)\btools?\b.{0,30}\b(?:call|use|available|schema)|function[_ ]call|\btool_call"
        r"|\"(?:name|type)\": ?\"(?:function|tool)|\bapi (?:call|request)s?\b|json schema"
        r"|\bagent(?:ic)?\b|<tool|\bbrowse the web\b|\bsearch the web\b",
    ),
    (
        "coding",
        r"(?i)\b(?:python|javascript|typescript|java|c\+\+|golang|rust|sql|bash|regex|html|css)\b"
        r"|\b(?:code|function|class|method|bug|debug|compile|stack ?trace|refactor|unit tests?"
        r"|algorithm|script|program|api|library|exception|leetcode)\b|```|\bdef |#include|console\.log",
    ),
    (
        "math",
        r"(?i)\b(?:solve|equation|integral|derivative|prove|proof|theorem|lemma|calculate|compute"
        r"|probability|matrix|polynomial|algebra|geometry|calculus|arithmetic|sum of|factorial"
        r"|prime|fraction)\b|[0-9] ?[-+*/^=] ?[0-9x]",
    ),
    (
        "translation",
        r"(?i)\btranslat(?:e|ion|ed)\b|\bin(?:to)? (?:english|french|german|spanish|chinese"
        r"|japanese|russian|korean|arabic|italian|portuguese)\b",
    ),
    (
        "writing",
        r"(?i)\b(?:write|rewrite|draft|compose|summari[sz]e|paraphrase|essay|poem|story|article"
        r"|blog post|email|letter|cover letter|headline|slogan|tweet)\b",
    ),
    (
        "chat",
        r"(?i)^(?:hi|hello|hey|thanks|thank you|good (?:morning|evening))\b|\bhow are you\b"
        r"|\bwhat do you think\b|\btell me about yourself\b|\bwho are you\b",
    ),
)


def _hits(head: pa.Array, pattern: str) -> np.ndarray:
    m = pc.fill_null(pc.match_substring_regex(head, pattern), False)
    return m.to_numpy(zero_copy_only=False).astype(bool)


def _classify(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(reasoning flag, topic code) of each prompt of ``arr`` (first matching topic rule)."""
    head = pc.utf8_slice_codeunits(arr, 0, _SCAN_CHARS)
    reasoning = _hits(head, _REASONING)
    topic_code = np.full(len(arr), len(TOPICS) - 1, dtype=np.int64)  # "other"
    undecided = np.ones(len(arr), dtype=bool)
    for name, pattern in _TOPIC_RULES:
        # a rule only decides rows no earlier rule decided: scan those rows only
        # (the first rules, coding above all, decide a large share of the prompts)
        rows = np.flatnonzero(undecided)
        if len(rows) == 0:
            break
        if len(rows) * 4 > len(arr) * 3:  # most rows left: filtering would cost more
            m = _hits(head, pattern) & undecided
        else:
            m = np.zeros(len(arr), dtype=bool)
            m[rows] = _hits(head.take(pa.array(rows)), pattern)
        topic_code[m] = TOPICS.index(name)
        undecided &= ~m
    return reasoning, topic_code


def prompt_signals(
    prompts: pd.Series, *, factorized: tuple[np.ndarray, pa.Array] | None = None
) -> pd.DataFrame:
    """Reasoning request, topic and length of each prompt.

    Returns a frame aligned to ``prompts.index`` with columns ``reasoning``
    (bool: asks for step-by-step reasoning / chain of thought / shown work),
    ``topic`` (string, one of :data:`TOPICS`; ``other`` when no rule fires,
    missing prompts included) and ``length`` (int64 characters; 0 if missing).
    ``factorized``: the prompts' ``(codes, uniques)`` if already computed
    (:func:`linkage.identifiers.templates.factorize_text`); the signals are
    computed once per unique prompt either way.
    """
    codes, uniques = (
        pd.factorize(prompts, use_na_sentinel=True) if factorized is None else factorized
    )
    n_u = len(uniques)
    if n_u == 0:
        return pd.DataFrame(
            {
                "reasoning": np.zeros(len(prompts), dtype=bool),
                "topic": pd.array(["other"] * len(prompts), dtype="string"),
                "length": np.zeros(len(prompts), dtype=np.int64),
            },
            index=prompts.index,
        )
    arr = as_arrow(uniques)
    length_u = pc.fill_null(pc.utf8_length(arr), 0).to_numpy().astype(np.int64)
    parts = map_chunks(arr, _classify)
    reasoning_u = np.concatenate([p[0] for p in parts])
    topic_code_u = np.concatenate([p[1] for p in parts])

    valid = codes >= 0
    safe = np.where(valid, codes, 0)
    reasoning = np.where(valid, reasoning_u[safe], False)
    topic_code = np.where(valid, topic_code_u[safe], len(TOPICS) - 1)
    length = np.where(valid, length_u[safe], 0).astype(np.int64)
    topic = pa.array(np.array(TOPICS, dtype=object)).take(pa.array(topic_code))
    return pd.DataFrame(
        {
            "reasoning": reasoning.astype(bool),
            "topic": pd.Series(pd.arrays.ArrowStringArray(topic), index=prompts.index),
            "length": length,
        },
        index=prompts.index,
    )
