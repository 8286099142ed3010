"""Feature names that tools accept: tsfresh's names mapped to ``[A-Za-z0-9_]``.

tsfresh names a feature after its parameters, as Python writes them:
``cwt_coefficients__coeff_0__w_2__widths_(2, 5, 10, 20)``, ``fft_coefficient__attr_"real"``,
``value_count__value_-1``. LightGBM refuses quotes, commas and brackets in column names, and SQL
tools want plain identifiers. ``safe_names`` rewrites each name on its own, readably
(``..._widths_2_5_10_20``, ``attr_real``, ``value_neg1``), so the same feature gets the same
column in every file; only names that would then collide get a numbered suffix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import polars as pl

#: ``names``: tsfresh's own, or only letters, digits and ``_`` (``safe_names``).
NameStyle = Literal["tsfresh", "safe"]
NAME_STYLES = ("tsfresh", "safe")

_OTHER = "[^A-Za-z0-9_]"


def safe_names(names: Sequence[str]) -> list[str]:
    """Each name with only ``[A-Za-z0-9_]``: quotes dropped, a minus sign after ``_`` spelled
    ``neg``, other characters at either end dropped, each other run of them (with an ``_``
    beside it) one ``_``; an empty result is ``_``. ``__`` between kind, calculator and
    parameters stays. Names whose results collide are told apart deterministically, whatever
    their order: the one already safe (else the smallest) keeps the name, the others, in
    order, get ``_2``, ``_3``, ... (skipping names taken)."""
    safe = (
        pl.Series(names, dtype=pl.String)
        .str.replace_all(r"[\"']", "")
        .str.replace_all(r"(^|_)-([0-9.])", "${1}neg${2}")
        .str.replace_all(f"^{_OTHER}+|{_OTHER}+$", "")
        .str.replace_all(f"_?{_OTHER}+_?", "_")
        .replace("", "_")
        .to_list()
    )
    if len(set(safe)) == len(set(names)):
        return safe
    members: dict[str, set[str]] = defaultdict(set)
    for name, result in zip(names, safe, strict=True):
        members[result].add(name)
    taken = set(members)
    chosen: dict[str, str] = {}
    for result in sorted(members):
        first, *others = sorted(members[result], key=lambda name: (name != result, name))
        chosen[first] = result
        suffix = 2
        for name in others:
            while f"{result}_{suffix}" in taken:
                suffix += 1
            chosen[name] = f"{result}_{suffix}"
            taken.add(chosen[name])
    return [chosen[name] for name in names]
