"""Perturbation leaves technical text alone: each damage once seen on real documentation is
a regression case, and a corpus of real documentation (the standard library's docstrings)
is checked phrase by phrase."""

from __future__ import annotations

import importlib

import pytest

from bench.watermark import content, technical_tokens
from linkage.respond.perturb import perturb
from linkage.respond.spans import protected_spans

KEYS = [bytes([i]) * 8 for i in range(30)]


def outputs(text: str, strength: float = 1.0) -> list[str]:
    return [perturb(text, strength, k) for k in KEYS]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("To drop an item call list.remove(x) on the large list.", "list.remove(x)"),
        ("The big entry point lives in main.py and helpers in large.py.", "main.py"),
        ("Run SELECT name FROM users to choose the big rows.", "SELECT name FROM users"),
        ("Think of it as a big cache in front of the database.", "Think of it as"),
        ("In particular, the large file is read twice.", "In particular"),
        ("Use the -b option or --big to keep a large buffer.", "-b option or --big"),
        ("Pass --dry-run to see the large plan first.", "--dry-run"),
        ("Call os.path.join and np.array(x) on the big value.", "os.path.join and np.array(x)"),
        ("Note that big.table::large and a->large stay as written.", "big.table::large"),
    ],
)
def test_code_and_idioms_outside_fences_are_never_rewritten(text: str, kept: str):
    for out in outputs(text):
        assert kept in out, out


def test_yaml_keys_and_values_stay_even_without_a_fence():
    text = "Set these:\nbig: true\nlarge_buffer: yes\nmain: primary\nThe big value is simple."
    for out in outputs(text):
        assert "big: true\nlarge_buffer: yes\nmain: primary\n" in out


def test_a_name_defined_in_code_is_not_renamed_in_the_prose():
    text = "def improve(x):\n    return x\n\nCall improve(y) to improve the big value quickly."
    for out in outputs(text):
        assert out.count("improve") == 3, out  # the function keeps its name everywhere


def test_no_step_is_ever_dropped():
    text = (
        "First, switch the device off. Then remove the battery. Next, wait a big minute. "
        "Now insert the new battery. So the device is ready."
    )
    for out in outputs(text):
        for step in ("switch the device off", "remove the battery", "insert the new battery"):
            assert step in out
        assert out.count(".") == text.count(".")


def test_instructions_and_narrated_steps_keep_their_order():
    text = (
        "Install the big package. Run the large test suite. We open the big report. "
        "You check the large table.\nThe big cache is local. A large table is simple and fast.\n"
        "Plain words give the edit budget room: none of these words carries a choice, so "
        "they only count towards the length of the whole answer we write here today."
    )
    for out in outputs(text):
        first = out.split("\n")[0]
        assert first.index("Install") < first.index("Run") < first.index("We open")
        assert first.index("We open") < first.index("You check")
    # statements opening with a determiner may swap: the order channel still speaks
    assert any(o.split("\n")[1].startswith("A ") for o in outputs(text))


def test_capitals_and_proper_names_stay():
    text = "The client MUST NOT retry. We use Big Query and the large table. It is DO NOT USE."
    for out in outputs(text):
        assert "MUST NOT" in out and "Big Query" in out and "DO NOT USE" in out


def _stdlib_docs() -> list[str]:
    out = []
    for name in ("argparse", "sqlite3", "subprocess", "json", "pathlib", "logging", "csv"):
        mod = importlib.import_module(name)
        docs = [mod.__doc__ or ""] + [
            getattr(getattr(mod, a), "__doc__", "") or "" for a in sorted(dir(mod))[:60]
        ]
        out += [d for d in docs if len(d.split()) >= 20]
    return out


def test_real_documentation_keeps_every_technical_token_and_all_content():
    """Standard-library docstrings (written by nobody here): at full strength, every
    protected span, every technical token and every word outside the allowed alternations
    (pair members, contractions, listed phrases) come out unchanged."""
    docs = _stdlib_docs()
    assert len(docs) > 60
    changed = 0
    for i, d in enumerate(docs):
        out = perturb(d, 1.0, KEYS[i % len(KEYS)])
        changed += out != d
        assert "".join(protected_spans(out)) == "".join(protected_spans(d))
        assert technical_tokens(out) == technical_tokens(d), (d, out)
        assert content(out) == content(d), (d, out)
    assert changed > len(docs) // 4  # the watermark still speaks in real prose
