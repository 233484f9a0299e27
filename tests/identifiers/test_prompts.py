"""Reasoning / topic / length signals of prompts."""

from __future__ import annotations

import pandas as pd
import pytest

from linkage.identifiers.prompts import TOPICS, prompt_signals

REASONING = [
    "Solve 17*23. Think step by step.",
    "Let's think step-by-step about this riddle.",
    "Please show your work when you integrate x^2.",
    "Explain your reasoning before giving the final answer.",
    "Use chain of thought to decide which option is right.",
    "Walk me through your thought process for this proof.",
    "Think this through carefully and then answer: is 91 prime?",
    "Give the answer with your full reasoning.",
]
ORDINARY = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Translate 'good night' into Spanish.",
    "Fix the bug in this Python function: def f(x): return x +",
    "hello there!",
    "List three steps to bake bread.",
    "Summarize this article about the reasons for inflation.",
    "Which one is better, tea or coffee?",
]


def test_reasoning_requests_are_recognised() -> None:
    out = prompt_signals(pd.Series(REASONING))
    assert out["reasoning"].all(), out[~out["reasoning"]]


def test_no_false_reasoning_on_ordinary_prompts() -> None:
    out = prompt_signals(pd.Series(ORDINARY))
    assert not out["reasoning"].any(), out[out["reasoning"]]


@pytest.mark.parametrize(
    ("prompt", "topic"),
    [
        ("Fix the bug in this Python function: def f(x): return x", "coding"),
        ("Write a SQL query that counts users per country", "coding"),
        (
            'You have these tools available: [{"type": "function", "name": "get_weather"}]. Call the right tool.',
            "tool_use",
        ),
        ("Solve the equation 3x + 5 = 11", "math"),
        ("Prove that the square root of 2 is irrational", "math"),
        ("Write a short poem about the sea", "writing"),
        ("Translate this sentence into German: I like trains", "translation"),
        ("hello, how are you today?", "chat"),
        ("What is the capital of France?", "other"),
    ],
)
def test_topics(prompt: str, topic: str) -> None:
    assert prompt_signals(pd.Series([prompt]))["topic"].iloc[0] == topic


def test_alignment_length_and_missing() -> None:
    s = pd.Series(["abc", None, "Think step by step", "abc"], index=[10, 11, 12, 13])
    out = prompt_signals(s)
    assert list(out.index) == [10, 11, 12, 13]
    assert out["length"].tolist() == [3, 0, 18, 3]
    assert out["reasoning"].tolist() == [False, False, True, False]
    assert out["topic"].isin(TOPICS).all()
    assert out["topic"].iloc[1] == "other"
    assert out["reasoning"].dtype == bool


def test_empty_input() -> None:
    out = prompt_signals(pd.Series([], dtype="string"))
    assert list(out.columns) == ["reasoning", "topic", "length"]
    assert len(out) == 0
