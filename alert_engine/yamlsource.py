"""YAML documents that remember where each value came from: errors name file, line, column."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    file: Path
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class YamlError(Exception):
    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


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


def load_yaml(file: Path, text: str | None = None) -> LocatedDocument:
    if text is None:
        text = file.read_text(encoding="utf-8")
    try:
        loader = yaml.SafeLoader(text)
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
