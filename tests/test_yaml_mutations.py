"""Property: whatever is done to a pipeline file (keys dropped, duplicated, renamed, retyped,
values out of range, deep nesting, unicode, huge numbers), ``streamfx validate --offline``
ends in exit 0, or exit 2 with one ``error:`` line; never a traceback, never exit 1
"unexpected ...". The CLI runs in this process (typer's runner), so hundreds of files are
tried in seconds."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from streamfx.cli import app

from .conftest import REPO

BASE: dict[str, Any] = yaml.safe_load((REPO / "pipeline.yaml").read_text())

#: Values a mutation puts in place of another: wrong types, out of range, odd text, nesting.
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 10**400, 2**63, 1e308, math.inf, -math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "∞", "ü/ß", "1e400", "2024-02-30", "0.0000001s", "-1d"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.integers(1, 60).map(lambda depth: _nested(depth)),
)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of the mapping tree (lists are left whole)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    return found


def _parent(config: dict, path: tuple) -> dict:
    node = config
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The text of the shipped pipeline.yaml after one to three mutations."""
    config = copy.deepcopy(BASE)
    duplicate = False
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(config)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(config, path), path[-1]
        action = draw(st.sampled_from(["drop", "retype", "rename", "nest", "duplicate"]))
        if action == "drop":
            del parent[key]
        elif action == "retype":
            parent[key] = draw(ODD_VALUES)
        elif action == "rename":
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
        elif action == "nest":
            parent[key] = {draw(st.text(min_size=1, max_size=8)): parent[key]}
        else:
            duplicate = True
    text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    if duplicate:  # a key given twice: the YAML text repeats one of its lines
        lines = text.splitlines()
        keyed = [i for i, line in enumerate(lines) if ":" in line and not line.startswith("-")]
        if keyed:
            i = draw(st.sampled_from(keyed))
            lines.insert(i + 1, lines[i])
            text = "\n".join(lines) + "\n"
    return text


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated())
def test_any_mutation_is_valid_or_one_clean_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr, text)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (result.stderr, text)
        assert "unexpected" not in lines[0], (lines[0], text)
    assert "Traceback" not in result.stderr + result.stdout


def test_the_shipped_file_passes() -> None:
    """The mutations start from a valid file (else every outcome would be an error)."""
    result = CliRunner().invoke(app, ["validate", "--offline", str(REPO / "pipeline.yaml")])
    assert result.exit_code == 0, result.stderr
