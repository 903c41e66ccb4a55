"""YAML documents that remember where each value came from: errors name file, line, column.

A document is bounded before anything walks it: a file larger than `YamlLimits.max_bytes` is not
read, and one whose aliases would expand it beyond `YamlLimits.max_nodes` nodes (a "billion
laughs" file of a few hundred bytes stands for gigabytes) is refused at the alias that crosses the
limit. PyYAML composes an alias as the node it names, so the document is a graph; whatever walks
it later (locations, validation, hashing) walks the tree it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alert_engine.problems import AlertEngineError, Location

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlLimits:
    # A rule file is a few kilobytes; the limits leave room for generated files of many rules.
    max_bytes: int = 1024 * 1024
    # Nodes of the document with every alias expanded (a rule is 10 to 50 nodes).
    max_nodes: int = 100_000


class YamlError(AlertEngineError):
    def __init__(self, location: Location, message: str, *, limit: str | None = None) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message
        # The `YamlLimits` field the document exceeded, if that is the error.
        self.limit = limit


@dataclass(frozen=True)
class LocatedDocument:
    file: Path
    data: Any
    locations: dict[PathKey, Location] = field(repr=False)
    # Where each mapping key itself stands, for errors about the key rather than its value.
    key_locations: dict[PathKey, Location] = field(repr=False, default_factory=dict)

    def locate(self, path: PathKey) -> Location:
        """The location of `path`, or of its closest ancestor that exists in the document."""
        for end in range(len(path), -1, -1):
            found = self.locations.get(tuple(path[:end]))
            if found is not None:
                return found
        return Location(self.file, 1, 1)

    def locate_key(self, path: PathKey) -> Location:
        return self.key_locations.get(path) or self.locate(path)


def load_yaml(
    file: Path, text: str | None = None, *, limits: YamlLimits | None = None
) -> LocatedDocument:
    limits = limits or YamlLimits()
    if text is None:
        text = _read_bounded(file, limits.max_bytes)
    elif len(text) > limits.max_bytes:
        raise _too_large(file, limits.max_bytes)
    try:
        loader = _CountingLoader(text)
    except yaml.reader.ReaderError as exc:
        # A control character: PyYAML refuses the text before parsing, with an offset only.
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        raise YamlError(
            Location(file, line, column),
            f"invalid YAML: character #x{exc.character:04x} {exc.reason}",
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return LocatedDocument(file, None, {(): Location(file, 1, 1)})
        _check_expansion(loader, node, file, limits.max_nodes)
        locations: dict[PathKey, Location] = {}
        key_locations: dict[PathKey, Location] = {}
        _record(node, (), file, locations, key_locations)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise YamlError(Location(file, line, column), f"invalid YAML: {message}") from None
    finally:
        loader.dispose()
    return LocatedDocument(file, data, locations, key_locations)


def _read_bounded(file: Path, max_bytes: int) -> str:
    # Read at most one byte past the limit: a file that grows after a stat cannot slip through.
    with file.open("rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(file, max_bytes)
    return data.decode("utf-8")


def _too_large(file: Path, max_bytes: int) -> YamlError:
    return YamlError(
        Location(file, 1, 1),
        f"file too large: more than {max_bytes:,} bytes (not read)",
        limit="max_bytes",
    )


class _CountingLoader(yaml.SafeLoader):
    """Counts the nodes written out and records each alias (where it stands, what it repeats)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.written_nodes = 0
        self.aliases: list[tuple[yaml.Mark, str, yaml.Node]] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: yaml.AliasEvent = self.peek_event()  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            if node is not None and isinstance(event.start_mark, yaml.Mark):
                self.aliases.append((event.start_mark, str(event.anchor), node))
            return node
        self.written_nodes += 1
        return super().compose_node(parent, index)


def _check_expansion(loader: _CountingLoader, root: yaml.Node, file: Path, max_nodes: int) -> None:
    """The expanded document has the nodes written out plus, for each alias, the expanded size of
    the node it names: add them in document order and stop at the alias that crosses the limit."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    cap = max_nodes + 1

    def expanded(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            return cap  # a cycle (refused at its alias); never walk it
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total = min(cap, total + expanded(child))
            if total >= cap:
                break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    total = loader.written_nodes
    for mark, anchor, node in loader.aliases:
        if _contains(node, mark):
            raise YamlError(
                Location(file, mark.line + 1, mark.column + 1),
                f"alias *{anchor} stands inside the node it names: the document would be infinite",
                limit="max_nodes",
            )
        total += expanded(node)
        if total > max_nodes:
            raise YamlError(
                Location(file, mark.line + 1, mark.column + 1),
                f"aliases expand the document beyond {max_nodes:,} nodes (at alias *{anchor})",
                limit="max_nodes",
            )
    if total > max_nodes:
        raise YamlError(
            Location(file, 1, 1),
            f"the document has more than {max_nodes:,} nodes",
            limit="max_nodes",
        )


def _contains(node: yaml.Node, mark: yaml.Mark) -> bool:
    """Whether the alias at `mark` is written inside `node`, the node it names: the node was still
    open when the alias was read."""
    return node.start_mark.index <= mark.index < node.end_mark.index


def _record(
    node: yaml.Node,
    path: PathKey,
    file: Path,
    out: dict[PathKey, Location],
    keys_out: dict[PathKey, Location],
) -> None:
    out[path] = _location(file, node)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in seen:
                # PyYAML silently keeps the last duplicate; a rule author means one of them.
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
                )
            seen.add(key)
            keys_out[(*path, key)] = _location(file, key_node)
            _record(value_node, (*path, key), file, out, keys_out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), file, out, keys_out)


def _location(file: Path, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)
