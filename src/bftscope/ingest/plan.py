"""Planning an ingest: which files are new to the run, which repeat one already there, which continue
one that has since grown, whose node each is, and the parse units each is cut into.

Content identity: a file is known by the xxh3-128 of its bytes — a ``.gz`` by that of the bytes it
decompresses to as well, so a log and its gzipped copy are one content. Within one ingest the later copies
of the same bytes are duplicates of the first (a file and its copy under another name, or in another
folder); across ingests a file whose hash is a complete source of the run is a duplicate of it.

Grown files: a log of a node still running is longer each time it is read. Each line source
records its *prefix* — the length and hash of its bytes through the last complete line — and a
file whose first ``prefix_len`` bytes hash to a complete source's prefix continues that source: only
the bytes from there are read. Events are positioned by byte offset (``seq``), so a last line that
was still being written when the earlier source was read is replaced by its complete version
(:meth:`Store.trim_source`) instead of being counted twice. Compressed files and WALs are not
continued (a WAL is not cut at line boundaries); a grown one is ingested again as a new source.

The same holds within one ingest, where copies of one log taken at different moments meet (an API
simulation holding a log and, re-uploaded later, its longer version): a file whose bytes are the
beginning of an earlier file of the ingest is a duplicate of it, and a file that begins with an earlier
one continues it from that one's last complete line.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from bftscope.config import Settings
from bftscope.families import registry
from bftscope.families.base import ChainFamily
from bftscope.families.registry import format_by_name
from bftscope.ingest.discover import InputFile, Skipped, detect_format, gzip_cut, open_input
from bftscope.ingest.parsereport import ParseReport
from bftscope.ingest.source import NodeIdentity
from bftscope.ingest.worker import Unit, WorkerPool
from bftscope.store.base import NodeRecord, SourceRecord, Store

__all__ = ["IDENTITY_SCAN_BYTES", "FileResult", "Plan", "plan_files", "skipped_result"]

IDENTITY_SCAN_BYTES = 4 * 1024 * 1024


@dataclass
class FileResult:
    name: str
    format: str | None
    node: str | None
    status: str  # ingested | duplicate | unsupported (recognised, not decoded) | unrecognized | skipped | failed
    reason: str | None = None
    report: ParseReport = field(default_factory=ParseReport)
    size: int = 0
    duplicate_of: str | None = None  # the file (this ingest's, or a source of the run) with the same bytes
    start: int = 0  # first byte read: > 0 when the file continues a source ingested before it grew


@dataclass
class Plan:
    file: InputFile
    result: FileResult
    fmt_name: str = ""
    content_hash: str = ""
    prefix_len: int | None = None
    prefix_hash: str | None = None
    identity: NodeIdentity | None = None  # what the file says about its node (the family's type)
    node: NodeRecord | None = None
    source_id: int = 0
    continues: SourceRecord | None = None  # the source this one continues (a grown file)
    after: Plan | None = None  # the earlier file of this ingest that this one continues (a later copy of it)
    units_left: int = 0  # parse units not yet done


def skipped_result(s: Skipped) -> FileResult:
    return FileResult(s.name, None, None, s.status, s.reason, duplicate_of=s.duplicate_of)


def _hash_file(path: Path, lines: bool) -> tuple[str, int | None, str | None]:
    """``(content hash, prefix length, prefix hash)``; the prefix (through the last newline) only for
    line files. Hashed in place through a memory map (no copy)."""
    with path.open("rb") as fh:
        if path.stat().st_size == 0:
            empty = xxhash.xxh3_128(b"").hexdigest()
            return empty, None, None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            full = xxhash.xxh3_128(mm).hexdigest()
            if not lines:
                return full, None, None
            if mm[-1:] == b"\n":
                return full, len(mm), full
            cut = mm.rfind(b"\n") + 1
            if cut == 0:
                return full, None, None
            with memoryview(mm) as mv:
                return full, cut, xxhash.xxh3_128(mv[:cut]).hexdigest()


def _gz_content_hash(f: InputFile) -> str | None:
    """xxh3-128 of what a ``.gz`` decompresses to (the hash its plain copy has); None for a cut or
    unreadable stream, which is then known by its own bytes only."""
    hasher = xxhash.xxh3_128()
    try:
        with open_input(f) as (stream, _):
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
            if gzip_cut(stream):
                return None
    except (OSError, EOFError, ValueError):
        return None
    return hasher.hexdigest()


def _continued(path: Path, candidates: list[SourceRecord]) -> SourceRecord | None:
    """The candidate with the longest prefix that this file begins with. One pass over the file: the
    hash is extended from one candidate's length to the next."""
    best = None
    hasher = xxhash.xxh3_128()
    pos = 0
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm, memoryview(mm) as mv:
        for c in sorted(candidates, key=lambda c: c.prefix_len or 0):
            end = c.prefix_len or 0
            hasher.update(mv[pos:end])
            pos = end
            if hasher.hexdigest() == c.prefix_hash:
                best = c
    return best


def _same_start(a: Path, b: Path, n: int) -> bool:
    """Whether the first ``n`` bytes of ``a`` and ``b`` are equal; reads in growing chunks, so two
    unrelated logs are told apart after a few KiB."""
    chunk = 4096
    with a.open("rb") as fa, b.open("rb") as fb:
        while n > 0:
            k = min(n, chunk)
            x, y = fa.read(k), fb.read(k)
            if len(x) < k or x != y:
                return False
            n -= k
            chunk = min(chunk * 4, 1 << 20)
    return True


def _within_ingest(p: Plan, earlier: list[Plan]) -> tuple[Plan | None, Plan | None]:
    """``(contains, continued)``: an earlier line file of this ingest whose bytes begin with all of
    ``p``'s, and the longest earlier file (being ingested) whose bytes are the beginning of ``p``'s."""
    size, continued = p.result.size, None
    for q in earlier:
        if q.fmt_name != p.fmt_name or q.result.size == 0:
            continue
        if q.result.size > size:
            if _same_start(p.file.path, q.file.path, size):
                return q, None
        elif q.result.size < size and q.result.status == "ingesting":
            longest = continued is None or q.result.size > continued.result.size
            if longest and _same_start(p.file.path, q.file.path, q.result.size):
                continued = q
    return None, continued


def _check(store: Store, run_id: int, p: Plan, seen: dict[str, Plan], family: ChainFamily) -> bool:
    """Detect, hash and identify one file; True when it is new to the run and must be parsed."""
    fmt, reason = detect_format(p.file, registry.all_formats())
    if fmt is None:
        p.result.status, p.result.reason = "unrecognized", reason
        return False
    if (other := registry.family_of_format(fmt.name)) is not family:
        p.result.status = "skipped"
        p.result.reason = f"a {other.name} file ({fmt.name}) in a {family.name} run: ingest it into a run of its own"
        return False
    p.fmt_name = p.result.format = fmt.name
    lines = fmt.splittable and not p.file.gz
    p.content_hash, p.prefix_len, p.prefix_hash = _hash_file(p.file.path, lines)
    try:
        with open_input(p.file) as (stream, _):
            p.identity = fmt.identity(stream, IDENTITY_SCAN_BYTES)
    except (OSError, EOFError, ValueError) as exc:
        p.result.report.warn(f"identity scan stopped early: {exc}")
    keys = [p.content_hash]
    inner = _gz_content_hash(p.file) if p.file.gz else None
    if inner is not None:
        keys.append(inner)
    first = next((seen[k] for k in keys if k in seen), None)
    if first is not None:
        p.result.status, p.result.duplicate_of = "duplicate", first.result.name
        p.result.reason = f"same content as {first.result.name}"
        return False
    earlier = [q for q in {id(q): q for q in seen.values()}.values() if not q.file.gz
               and q.result.status in ("ingesting", "duplicate")] if lines else []  # fmt: skip
    for k in keys:
        seen[k] = p
    # A .gz source is stored under its decompressed hash (one a plain copy matches); one ingested before
    # that was stored under the hash of its compressed bytes, which is looked up too.
    found = (store.find_source(run_id, k) for k in reversed(keys))
    existing = next((s for s in found if s is not None and s.status == "complete"), None)
    p.content_hash = keys[-1]
    if existing is not None:
        p.result.status, p.result.duplicate_of = "duplicate", existing.name
        p.result.reason = f"already ingested into this run (same content as {existing.name})"
        return False
    if lines:
        contains, after = _within_ingest(p, earlier)
        if contains is not None:
            p.result.status, p.result.duplicate_of = "duplicate", contains.result.name
            p.result.reason = f"its content is the beginning of {contains.result.name} (a later copy of this log)"
            return False
        candidates = [c for c in store.continuable_sources(run_id, fmt.name, p.result.size)
                      if (c.prefix_len or 0) < p.result.size]  # fmt: skip
        p.continues = _continued(p.file.path, candidates) if candidates else None
        if after is not None and (p.continues is None or (after.prefix_len or 0) > (p.continues.prefix_len or 0)):
            p.continues, p.after = None, after
        start = p.after.prefix_len if p.after is not None else p.continues.prefix_len if p.continues else None
        if p.continues is not None or p.after is not None:
            p.result.start = start or 0
            p.result.reason = f"appended: read {p.result.size - p.result.start:,} new bytes"
    return True


def _units_of(first_uid: int, plan_index: int, p: Plan, settings: Settings) -> list[Unit]:
    """Parse units of one file: byte ranges for large line files, the whole file otherwise (from where
    an earlier source of it stopped, for a grown file)."""
    fmt = format_by_name(p.fmt_name)
    size, begin = p.result.size, p.result.start
    if fmt.splittable and not p.file.gz and size - begin > settings.split_bytes:
        step = settings.split_bytes
        bounds = [(start, min(start + step, size)) for start in range(begin, size, step)]
    else:
        bounds = [(begin, size)]
    return [
        Unit(first_uid + k, plan_index, p.file, p.fmt_name, start, None if end >= size else end)
        for k, (start, end) in enumerate(bounds)
    ]


def plan_files(
    store: Store,
    run_id: int,
    plans: list[Plan],
    settings: Settings,
    units: list[Unit],
    pool: WorkerPool | None,
    family: ChainFamily,
) -> None:
    """Check every file of ``plans`` (filled in place); a new source's parse units are queued to the pool
    as soon as it is checked, so parsing starts while later files are still being hashed. Nodes are
    identified and named by the run's chain ``family``."""
    names: dict[str, str] = {}
    for home in {p.file.home for p in plans if p.file.home is not None}:
        names.update(family.home_names(home))
    seen: dict[str, Plan] = {}
    for i, p in enumerate(plans):
        if not _check(store, run_id, p, seen, family):
            continue
        p.result.status = "ingesting"
        new_units = _units_of(len(units), i, p, settings)
        p.units_left = len(new_units)
        units.extend(new_units)
        if pool is not None:
            pool.submit(new_units)
    # Files of one node home share an identity; merge what each one revealed.
    by_home: dict[Path, NodeIdentity] = {}
    for p in plans:
        if p.file.home is not None and p.fmt_name:
            if p.identity is None:
                p.identity = family.new_identity()
            ident = by_home.setdefault(p.file.home, family.home_identity(p.file.home))
            for c in ident.conflicts(p.identity):
                p.result.report.warn(f"identity conflict with its node home ({c}); kept the first")
            ident.merge(p.identity)
    _explain_unsupported(plans)
    for p in plans:
        if not p.fmt_name:
            continue
        found = by_home.get(p.file.home, p.identity) if p.file.home is not None else p.identity
        # None: the identity scan failed before the format's identity was read
        ident = found if found is not None else family.new_identity()
        label = family.node_label(ident, names, p.file.home, p.file.path)
        if not ident.known:
            p.result.report.warn(
                f"no node identity found in {p.file.name}; attributed to node '{label}' by its file/folder name"
            )
        p.node = family.resolve_node(store, run_id, ident, label, p.file.home)
        p.result.node = p.node.label
        if p.result.status == "ingesting":
            p.source_id = store.begin_source(
                run_id, p.node.node, p.file.name, p.fmt_name, p.content_hash, p.result.size,
                start_offset=p.result.start, prefix_len=p.prefix_len, prefix_hash=p.prefix_hash,
            ).id  # fmt: skip


def _explain_unsupported(plans: list[Plan]) -> None:
    """A file of a recognised but unsupported format (a Tendermint ≤ 0.33 WAL) is ingested for the record
    (its source says why it gave nothing); its reason says whether the node's other files were read."""
    for p in plans:
        why = getattr(format_by_name(p.fmt_name), "unsupported", None) if p.fmt_name else None
        if why is None:
            continue
        read = any(q is not p and q.fmt_name and q.file.home is not None and q.file.home == p.file.home
                   and not getattr(format_by_name(q.fmt_name), "unsupported", None) for q in plans)  # fmt: skip
        note = "logs of this node were read" if read else "no other file of this node was given"
        p.result.reason = f"{why} ({note})"
        p.result.report.warn(p.result.reason)
