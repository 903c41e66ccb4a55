"""The YAML loader's bounds: a small file cannot stand for a huge document."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.rules.yamlsource import YamlError, YamlLimits, load_yaml


def billion_laughs(levels: int) -> str:
    """Each level is a list of ten aliases of the level before: 10**levels nodes."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    names = "abcdefghij"
    for level in range(1, levels):
        name, before = names[level], names[level - 1]
        lines.append(f"{name}: &{name} [{', '.join([f'*{before}'] * 10)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [5, 9])
def test_a_billion_laughs_file_is_refused_at_the_alias_that_crosses_the_limit(
    tmp_path: Path, levels: int
) -> None:
    # The 9-level file is 372 bytes and stands for 10**9 nodes: loading it took 24 s and 1.9 GB
    # at 10**7 expansions, with the worker's loop stalled throughout.
    file = tmp_path / "laughs.yaml"
    file.write_text(billion_laughs(levels))
    assert file.stat().st_size < 1024
    with pytest.raises(YamlError) as caught:
        load_yaml(file)
    # Level e (line 5) is the first whose aliases add up to more than 100,000 nodes.
    assert str(caught.value) == (
        f"{file}:5:36: aliases expand the document beyond 100,000 nodes (at alias *d)"
    )
    assert caught.value.limit == "max_nodes"


def test_an_alias_inside_the_node_it_names_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "loop.yaml"
    file.write_text("name: x\nlabels: &l {a: *l}\n")
    with pytest.raises(YamlError) as caught:
        load_yaml(file)
    assert str(caught.value) == (
        f"{file}:2:16: alias *l stands inside the node it names: the document would be infinite"
    )


def test_ordinary_aliases_and_merge_keys_still_load(tmp_path: Path) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text(
        "common: &common {team: care, tier: gold}\n"
        "rules:\n"
        "  - {name: a, labels: *common}\n"
        "  - {name: b, labels: {<<: *common, tier: silver}}\n"
    )
    data = load_yaml(file).data
    assert data["rules"][0]["labels"] == {"team": "care", "tier": "gold"}
    assert data["rules"][1]["labels"] == {"team": "care", "tier": "silver"}


def test_a_file_larger_than_the_limit_is_refused_unread(tmp_path: Path) -> None:
    file = tmp_path / "big.yaml"
    file.write_text("name: x\ndescription: '" + "x" * (1024 * 1024) + "'\n")
    with pytest.raises(YamlError) as caught:
        load_yaml(file)
    assert str(caught.value) == f"{file}:1:1: file too large: more than 1,048,576 bytes (not read)"
    assert caught.value.limit == "max_bytes"
    # The limit is the caller's to set.
    assert load_yaml(file, limits=YamlLimits(max_bytes=2 * 1024 * 1024)).data["name"] == "x"


def test_a_document_written_out_beyond_the_node_limit_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "many.yaml"
    file.write_text("items: [" + ", ".join(["1"] * 200) + "]\n")
    with pytest.raises(YamlError) as caught:
        load_yaml(file, limits=YamlLimits(max_nodes=150))
    assert str(caught.value) == f"{file}:1:1: the document has more than 150 nodes"


# Documents whose parts are shared: PyYAML writes a shared part once, with an anchor, and an alias
# wherever it appears again.
scalars = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none())


@st.composite
def shared_documents(draw: st.DrawFn) -> Any:
    parts: list[Any] = [draw(scalars)]
    for _ in range(draw(st.integers(1, 6))):
        chosen = draw(st.lists(st.sampled_from(parts), min_size=1, max_size=6))
        if draw(st.booleans()):
            parts.append(chosen)
        else:
            parts.append({f"k{i}": value for i, value in enumerate(chosen)})
    return {"doc": parts[-1]}


def expanded_nodes(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(1 + expanded_nodes(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(expanded_nodes(item) for item in value)
    return 1


@settings(max_examples=200, deadline=None)
@given(document=shared_documents(), max_nodes=st.integers(1, 400))
def test_a_document_loads_as_pyyaml_reads_it_exactly_when_it_is_within_the_limit(
    document: Any, max_nodes: int
) -> None:
    text = yaml.safe_dump(document)
    size = expanded_nodes(document)
    try:
        loaded = load_yaml(Path("doc.yaml"), text, limits=YamlLimits(max_nodes=max_nodes))
    except YamlError as exc:
        assert exc.limit == "max_nodes"
        assert size > max_nodes
    else:
        assert size <= max_nodes
        assert loaded.data == yaml.safe_load(text)
