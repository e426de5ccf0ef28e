"""Where a live runner's events land in the store: a run of a chain family, one node and one source per live
source (:class:`bftscope.ingest.live.EventSink`).

A family's live decoder yields rows of the neutral event model (:data:`bftscope.model.ROW_SCHEMA`), as an
Arrow table or as mappings of column → value; they are appended to the run exactly as parsed files are. Time
a source was not observed (a lost connection, until it came back or the runner stopped) is stored as an
``observation_gap`` event on that source's node — ``ts`` its start, ``extra`` its end and reason — so that an
answer depending on that time can say "unknown" instead of "missing".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from bftscope.families import registry
from bftscope.ingest import derived
from bftscope.ingest.live import Gap
from bftscope.model import OBSERVATION_GAP, ROW_SCHEMA
from bftscope.store.base import Store

__all__ = ["StoreSink"]


@dataclass
class _Source:
    node: int
    source_id: int
    events: int = 0


@dataclass
class StoreSink:
    """Appends each live source's events to run ``run`` (created for ``chain`` if new) of ``store``."""

    store: Store
    run: str
    chain: str
    _sources: dict[str, _Source] = field(default_factory=dict)
    _run_id: int | None = None
    _stale: bool = False  # events were added since the derived tables were last brought up to date

    def _source(self, name: str) -> _Source:
        src = self._sources.get(name)
        if src is None:
            family = registry.family(self.chain)
            if self._run_id is None:
                self._run_id = self.store.get_or_create_run(self.run, self.chain).id
            earlier = self.store.find_source(self._run_id, f"live:{name}")
            if earlier is not None:  # a run followed again: go on with its source (starting anew would delete it)
                src = self._sources[name] = _Source(earlier.node, earlier.id, earlier.events)
                return src
            node = family.resolve_node(self.store, self._run_id, family.new_identity(), name, None)
            record = self.store.begin_source(self._run_id, node.node, f"live:{name}", "live", f"live:{name}", 0)
            src = self._sources[name] = _Source(node.node, record.id)
        return src

    def write(self, source: str, events: Sequence[Any]) -> None:
        if not events:
            return
        table = events[0] if len(events) == 1 and isinstance(events[0], pa.Table) else _table(events)
        src = self._source(source)
        assert self._run_id is not None
        if not self._stale:  # as the batch pipeline: derived tables are not current once events change
            self.store.set_derived_version(self._run_id, None)
            self._stale = True
        src.events += self.store.append_events(self._run_id, src.node, src.source_id, table.cast(ROW_SCHEMA))

    def gap(self, gap: Gap) -> None:
        row = {"ts": int(gap.start * 1e9), "kind": OBSERVATION_GAP,
               "extra": json.dumps({"end_ns": int(gap.end * 1e9), "reason": gap.reason})}  # fmt: skip
        self.write(gap.source, [row])

    def flush(self) -> None:
        """Close every source with its count, then bring the run's derived tables and rollups up to date."""
        self.store.flush_events()
        for src in self._sources.values():
            self.store.finish_source(src.source_id, lines=src.events, events=src.events, skipped={}, warnings=[])
        if self._run_id is not None and self._stale:
            derived.ensure_current(self.store, self._run_id)
            self._stale = False


def _table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in ROW_SCHEMA},
                    schema=ROW_SCHEMA)  # fmt: skip
