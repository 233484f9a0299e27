"""Keyed 64-bit hashes of identifier strings, on the Arrow buffers (no Python strings).

The public face of the compiled SipHash in :mod:`linkage.identifiers._template_kernel`:
equal to pandas ``hash_array(values, hash_key=key, categorize=False)`` of a null-free
string array. The template stage hashes prompts with it, the graph stage identifier
values (seeded sparsifier draws).
"""

from __future__ import annotations

from linkage.identifiers._template_kernel import siphash_strings

__all__ = ["siphash_strings"]
