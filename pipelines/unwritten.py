"""What a failed node leaves unwritten: the files of every sink downstream of it.

nipype runs a workflow as its flat graph, a networkx ``DiGraph`` whose nodes are the graph's
nodes (sub-workflows dissolved) and whose edges are their connections; a node that fails
stops everything reachable from it.  The sinks among those (and the failed node itself, when
it is a sink) are the outputs the run could not write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from anatprep.interfaces.bids_sink import BidsSink, DerivativesDataSink, bids_name


def flat_graph(workflow: Any) -> nx.DiGraph:
    """The graph nipype runs for ``workflow`` (its private ``_create_flat_graph``: nipype
    has no public way to it; it works on a copy, the workflow is left as it is)."""
    return workflow._create_flat_graph()


def unwritten(graph: nx.DiGraph, failed: str) -> list[str]:
    """The file names the sinks at or downstream of ``failed`` (a node's full name, as crash
    files give it: ``anatprep_wf.sub_01_wf.convert_T1w``) would have written, in graph order;
    an output a run may not produce (Atropos off) marked ``(optional)``.  [] for a name
    that is no node of ``graph``."""
    node = next((n for n in graph if n.fullname == failed), None)
    if node is None:
        return []
    reached = nx.descendants(graph, node) | {node}
    return [name for n in nx.topological_sort(graph) if n in reached for name in _files(n)]


def _files(node: Any) -> list[str]:
    """The file names a sink node writes (none for any other node)."""
    interface, inputs = node.interface, node.inputs
    if isinstance(interface, BidsSink):
        return [Path(path).name for path in inputs.out_files]
    if isinstance(interface, DerivativesDataSink):
        name = bids_name(inputs.source_file, inputs.entities or {}, inputs.suffix,
                         inputs.extension)  # fmt: skip
        return [f"{name} (optional)" if inputs.allow_absent else name]
    return []
