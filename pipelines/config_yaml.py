"""Reading a config file's YAML defensively: the file is hostile until validated.

A config is small, plain YAML: no anchors or aliases (an alias bomb grows without bound), no
duplicate keys (YAML keeps the last one silently), at most :data:`MAX_BYTES` of UTF-8 text
and :data:`MAX_DEPTH` levels of nesting.  Anything else is a :class:`ConfigYAMLError` whose
message names the key path and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from anatprep.interfaces.bounded_read import FileRefused, read_regular_file

#: a config is a few kB; a large subject_map fits many times over
MAX_BYTES = 1 << 20
#: our deepest key (``series.rules.T1w.description``) is 4 levels
MAX_DEPTH = 32


class ConfigYAMLError(ValueError):
    """The file cannot be a config; the message names the key path (or byte) and the line."""


def _key_path(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader refusing anchors, aliases, duplicate keys and deep nesting, with key paths."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[Any] = []
        self._paths: dict[Node, tuple[Any, ...]] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Track the key path while composing; refuse anchors, aliases and deep nesting."""
        segment = index.value if isinstance(index, ScalarNode) else index
        if index is not None:  # None: the node is a mapping key, not a value
            self._path.append(segment)
        try:
            event = self.peek_event()
            anchor = event.anchor if isinstance(event, NodeEvent) else None
            if anchor is not None:
                kind = "alias *" if isinstance(event, AliasEvent) else "anchor &"
                raise ConfigYAMLError(
                    f"{_key_path(tuple(self._path))}: {kind}{anchor}: anchors and aliases "
                    f"(&name, *name) are not allowed in anatprep configs "
                    f"({_where(event.start_mark)})"
                )
            if len(self._path) > MAX_DEPTH:
                raise ConfigYAMLError(
                    f"{_key_path(tuple(self._path[:MAX_DEPTH]))}...: nested deeper than "
                    f"{MAX_DEPTH} levels ({_where(event.start_mark)})"
                )
            node = super().compose_node(parent, index)
            if node is not None:
                self._paths[node] = tuple(self._path)
            return node
        finally:
            if index is not None:
                self._path.pop()

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Refuse a key given twice in one mapping, naming its path and both lines."""
        path = self._paths.get(node, ())
        first: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # unhashable: the base class says so with the line
                break
            if earlier is not key_node:
                raise ConfigYAMLError(
                    f"{_key_path((*path, key))}: duplicate key ({_where(key_node.start_mark)}; "
                    f"first at {_where(earlier.start_mark)})"
                )
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """A scalar Python refuses (a 5000-digit integer, 2020-02-30) is a config error."""
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:
            if isinstance(exc, ConfigYAMLError):
                raise
            path = _key_path(self._paths.get(node, ()))
            reason = str(exc).split(";")[0]  # not Python's advice on sys.set_int_max_str_digits
            raise ConfigYAMLError(f"{path}: {reason} ({_where(node.start_mark)})") from None


def read_text(path: Path) -> str:
    """The file's text: a regular file (a FIFO would block, ``/dev/zero`` never ends) of at
    most :data:`MAX_BYTES`, UTF-8 (the offset of a bad byte otherwise).

    OSError passes through."""
    try:
        raw = read_regular_file(path, MAX_BYTES)
    except FileRefused as exc:
        raise ConfigYAMLError(str(exc)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigYAMLError(
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte offset {exc.start} "
            f"(line {line}) ({exc.reason})"
        ) from None


def parse(text: str) -> Any:
    """The YAML document in ``text``; ConfigYAMLError or yaml.YAMLError if it is refused."""
    loader = _ConfigLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # nesting inside one flow collection, before compose_node sees it
        raise ConfigYAMLError(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
