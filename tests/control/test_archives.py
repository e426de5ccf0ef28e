"""expand_upload: archives extract into a new folder, safely; bombs, traversal and corruption are refused."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from bftscope.control.archives import ArchiveLimits, expand_upload, survey_upload
from bftscope.errors import FormatError, PayloadTooLargeError
from tests.conftest import require_data

HOME_TREE = {
    "node0/config/config.toml": b'moniker = "node0"\n',
    "node0/data/cs.wal/wal": bytes(range(256)) * 40,
    "node0/node.log": b"I[2024-01-01|00:00:00.000] enterNewRound height=1\n" * 100,
    "node1/node.log.gz": gzip.compress(b"I[2024-01-01|00:00:00.001] commit height=1\n" * 100),
}
BOMB_BYTES = 200 * 1000 * 1000


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_tree(root: Path) -> Path:
    for rel, data in HOME_TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


class Zeros(io.RawIOBase):
    """``n`` zero bytes, produced lazily: a bomb's payload without holding it in memory."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def add_tar_member(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if info.isreg() else None)


@pytest.fixture
def into(tmp_path: Path) -> Path:
    d = tmp_path / "expanded"
    d.mkdir()
    return d


@pytest.mark.parametrize("fmt", ["tar.gz", "tar", "zip"])
def test_node_home_archive_extracts_exactly(tmp_path: Path, into: Path, fmt: str) -> None:
    src = make_tree(tmp_path / "src")
    archive = tmp_path / f"testnet.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel in HOME_TREE:
                zf.write(src / rel, rel)
    else:
        with tarfile.open(archive, "w:gz" if fmt == "tar.gz" else "w") as tf:
            tf.add(src / "node0", "node0")
            tf.add(src / "node1", "./node1")
    result = expand_upload(archive, into, ArchiveLimits())
    assert result.kind == fmt and result.skipped == []
    assert result.paths == [into / "testnet"] == [result.extracted_to]
    assert files_under(into / "testnet") == HOME_TREE
    assert result.files == len(HOME_TREE)
    assert archive.exists()  # the upload itself is left for the caller


def test_kind_comes_from_magic_bytes_and_folder_names_are_unique(tmp_path: Path, into: Path) -> None:
    archive = tmp_path / "upload"
    with tarfile.open(archive, "w:gz") as tf:
        add_tar_member(tf, "node0/node.log", b"hello\n")
    first = expand_upload(archive, into, ArchiveLimits())
    second = expand_upload(archive, into, ArchiveLimits())
    assert (first.kind, first.paths, second.paths) == ("tar.gz", [into / "upload"], [into / "upload-1"])


def test_plain_and_gz_files_are_returned_as_they_are(tmp_path: Path, into: Path) -> None:
    plain = tmp_path / "node.log"
    plain.write_bytes(HOME_TREE["node0/node.log"])
    gz = tmp_path / "node.log.gz"
    gz.write_bytes(HOME_TREE["node1/node.log.gz"])
    assert expand_upload(plain, into, ArchiveLimits()).paths == [plain]
    result = expand_upload(gz, into, ArchiveLimits())
    assert (result.kind, result.paths, result.bytes_out) == ("gzip", [gz], 4300)
    assert list(into.iterdir()) == []


def test_unsafe_zip_members_are_skipped_and_nothing_lands_outside(tmp_path: Path, into: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("../evil"), b"escape")
        zf.writestr(zipfile.ZipInfo("/abs/evil"), b"absolute")
        zf.writestr(zipfile.ZipInfo("a\\..\\..\\evil"), b"backslashes")
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("ok/node.log", b"fine")
    result = expand_upload(archive, into, ArchiveLimits())
    assert files_under(tmp_path) == {"evil.zip": archive.read_bytes(), "expanded/evil/ok/node.log": b"fine"}
    reasons = {s.member: s.reason for s in result.skipped}
    assert set(reasons) == {"../evil", "/abs/evil", "a\\..\\..\\evil", "link"}
    assert "symbolic link" in reasons["link"]


def test_links_devices_and_traversal_in_tar_are_skipped(tmp_path: Path, into: Path) -> None:
    archive = tmp_path / "home.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        add_tar_member(tf, "../../evil", b"escape")
        add_tar_member(tf, "/etc/cron.d/evil", b"absolute")
        add_tar_member(tf, "sym", type=tarfile.SYMTYPE, linkname="/etc")
        add_tar_member(tf, "hard", type=tarfile.LNKTYPE, linkname="node.log")
        add_tar_member(tf, "fifo", type=tarfile.FIFOTYPE)
        add_tar_member(tf, "dev", type=tarfile.CHRTYPE)
        add_tar_member(tf, "sym/passwd", b"through the link")
        add_tar_member(tf, "node.log", b"one")
        add_tar_member(tf, "node.log", b"two")
    result = expand_upload(archive, into, ArchiveLimits())
    assert files_under(into / "home") == {"node.log": b"one", "sym/passwd": b"through the link"}
    assert not (into / "home" / "sym").is_symlink()
    reasons = [s.reason for s in result.skipped]
    skipped = ["../../evil", "/etc/cron.d/evil", "sym", "hard", "fifo", "dev", "node.log"]
    assert [s.member for s in result.skipped] == skipped
    assert reasons[2:6] == ["symbolic link: not extracted", "hard link: not extracted", "FIFO: not extracted",
                            "device: not extracted"]  # fmt: skip
    assert files_under(tmp_path).keys() == {"home.tgz", "expanded/home/node.log", "expanded/home/sym/passwd"}


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "gz"])
def test_decompression_bombs_are_refused(tmp_path: Path, into: Path, fmt: str) -> None:
    archive = tmp_path / f"bomb.{fmt}"
    if fmt == "zip":
        with (
            zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
            zf.open("zeros.log", "w") as out,
        ):
            zeros = Zeros(BOMB_BYTES)
            while chunk := zeros.read(1 << 20):
                out.write(chunk)
    elif fmt == "tar.gz":
        with tarfile.open(archive, "w:gz", compresslevel=1) as tf:
            info = tarfile.TarInfo("zeros.log")
            info.size = BOMB_BYTES
            tf.addfile(info, Zeros(BOMB_BYTES))
    else:
        with gzip.open(archive, "wb", compresslevel=1) as gz:
            zeros = Zeros(BOMB_BYTES)
            while chunk := zeros.read(1 << 20):
                gz.write(chunk)
    assert archive.stat().st_size < 2_000_000
    with pytest.raises(PayloadTooLargeError) as err:
        expand_upload(archive, into, ArchiveLimits())
    assert err.value.status == 413 and "bomb" in err.value.message
    assert list(into.iterdir()) == []


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        (ArchiveLimits(max_member_bytes=1000), "member over 1000"),
        (ArchiveLimits(max_total_bytes=2500), "over 2500 bytes"),
        (ArchiveLimits(max_members=2), "over 2 archive members"),
    ],
)
@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_member_total_and_count_limits(tmp_path: Path, into: Path, limits: ArchiveLimits, words: str, fmt: str) -> None:
    archive = tmp_path / f"a.{fmt}"
    members = {f"m{i}.log": os.urandom(900 + 100 * i) for i in range(3)}
    if fmt == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(archive, "w") as tf:
            for name, data in members.items():
                add_tar_member(tf, name, data)
    with pytest.raises(PayloadTooLargeError, match=words):
        expand_upload(archive, into, limits)
    assert list(into.iterdir()) == []


def test_oversized_tar_header_is_refused(tmp_path: Path, into: Path) -> None:
    archive = tmp_path / "pax.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("node.log")
        info.pax_headers = {"comment": os.urandom(10_000_000).hex()}
        tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(PayloadTooLargeError, match="tar header"):
        expand_upload(archive, into, ArchiveLimits())
    assert list(into.iterdir()) == []


def test_corrupt_archives_give_422_and_leave_nothing(tmp_path: Path, into: Path) -> None:
    src = make_tree(tmp_path / "src")
    good_tgz, good_zip = tmp_path / "good.tgz", tmp_path / "good.zip"
    with tarfile.open(good_tgz, "w:gz") as tf:
        tf.add(src, "home")
    with zipfile.ZipFile(good_zip, "w", zipfile.ZIP_STORED) as zf:
        for rel in HOME_TREE:
            zf.write(src / rel, rel)
    zip_bytes = bytearray(good_zip.read_bytes())
    at = zip_bytes.index(b"moniker")  # stored, not deflated: flip a data byte so only the CRC can tell
    zip_bytes[at] ^= 0xFF
    gz_bytes = gzip.compress(os.urandom(50_000))
    cases = {
        "truncated.tgz": good_tgz.read_bytes()[: good_tgz.stat().st_size // 2],
        "truncated.zip": good_zip.read_bytes()[:-300],
        "badcrc.zip": bytes(zip_bytes),
        "truncated.gz": gz_bytes[: len(gz_bytes) // 2],
        "garbage.zip": b"PK\x03\x04" + os.urandom(1000),
        "notazip.zip": b"just a log line\n",
        "notatar.tar.gz": gzip.compress(b"a log, not a tar\n"),
    }
    for name, data in cases.items():
        bad = tmp_path / name
        bad.write_bytes(data)
        with pytest.raises(FormatError) as err:
            expand_upload(bad, into, ArchiveLimits())
        assert err.value.status == 422, name
        assert list(into.iterdir()) == [], name


def test_unsupported_compression_is_reported(tmp_path: Path, into: Path) -> None:
    xz = tmp_path / "logs.tar.xz"
    xz.write_bytes(b"\xfd7zXZ\x00" + os.urandom(100))
    result = expand_upload(xz, into, ArchiveLimits())
    assert result.kind == "unsupported" and result.paths == []
    assert "xz" in result.skipped[0].reason


def test_real_wal_testnet_round_trips_through_tar_gz(tmp_path: Path, into: Path) -> None:
    source = require_data("cometbft/tendermint-v0.34-4node-wal")
    archive = tmp_path / "tendermint-v0.34-4node-wal.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(source, source.name)
    result = expand_upload(archive, into, ArchiveLimits())
    assert result.skipped == []
    expected = files_under(source)
    assert len(expected) >= 12  # four nodes: config.toml, genesis.json, cs.wal/wal, log
    assert files_under(into / source.name / source.name) == expected


def sparse_tar(tmp_path: Path, size: int) -> Path:
    """A real ``tar --sparse`` of a ``size``-byte file that is one hole and a last line: a few hundred bytes."""
    src = tmp_path / "sparse-src"
    src.mkdir()
    with (src / "big.log").open("wb") as fh:
        fh.truncate(size - 6)  # a hole: no disk blocks, so no real size on disk in the test either
        fh.seek(size - 6)
        fh.write(b"hello\n")
    archive = tmp_path / "s.tar.gz"
    subprocess.run(["tar", "--sparse", "-czf", str(archive), "-C", str(src), "big.log"], check=True)
    return archive


# The ratio limit is set out of reach so that the total limit alone is what must stop these.
LOW_TOTAL = ArchiveLimits(max_total_bytes=4 * 1024 * 1024, max_ratio=1e12)


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar for --sparse")
def test_sparse_tar_is_counted_by_what_is_written(tmp_path: Path, into: Path) -> None:
    archive = sparse_tar(tmp_path, LOW_TOTAL.max_total_bytes + 1)
    assert archive.stat().st_size < 1000  # the compressed stream alone says nothing about the 4 MiB inside
    with pytest.raises(PayloadTooLargeError, match=f"expands to over {LOW_TOTAL.max_total_bytes} bytes"):
        expand_upload(archive, into, LOW_TOTAL)
    assert list(into.iterdir()) == []
    with pytest.raises(PayloadTooLargeError, match="member over 1000000"):
        expand_upload(archive, into, ArchiveLimits(max_member_bytes=1_000_000, max_ratio=1e12))
    with pytest.raises(PayloadTooLargeError, match="bomb"):  # and the ratio, with the default limits
        expand_upload(archive, into, ArchiveLimits())
    assert list(into.iterdir()) == []
    # just under the limit it extracts, byte for byte
    (tmp_path / "ok").mkdir()
    ok = sparse_tar(tmp_path / "ok", LOW_TOTAL.max_total_bytes - 1024)
    result = expand_upload(ok, into, LOW_TOTAL)
    data = (into / "s" / "big.log").read_bytes()
    assert len(data) == LOW_TOTAL.max_total_bytes - 1024 and data.endswith(b"\x00hello\n")
    assert result.bytes_out >= len(data)


@pytest.mark.parametrize("concatenated", [False, True])
def test_gzip_member_inside_a_tar_counts_its_inflated_size(tmp_path: Path, into: Path, concatenated: bool) -> None:
    inner = gzip.compress(bytes(LOW_TOTAL.max_total_bytes + 1), compresslevel=9)
    if concatenated:  # a small first gzip member, the big one after it: both are followed
        inner = gzip.compress(b"I[2024-01-01|00:00:00.000] enterNewRound height=1\n") + inner
    archive = tmp_path / "home.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        add_tar_member(tf, "node0/node.log.gz", inner)
    assert archive.stat().st_size < 20_000
    with pytest.raises(PayloadTooLargeError, match="expands to over"):
        expand_upload(archive, into, LOW_TOTAL)
    with pytest.raises(PayloadTooLargeError, match="bomb"):
        expand_upload(archive, into, ArchiveLimits())
    with pytest.raises(PayloadTooLargeError, match="inflates to over 1000000"):
        expand_upload(archive, into, ArchiveLimits(max_member_bytes=1_000_000, max_ratio=1e12))
    assert list(into.iterdir()) == []


def test_survey_reports_what_extraction_would_and_writes_nothing(tmp_path: Path, into: Path) -> None:
    archive = tmp_path / "home.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        add_tar_member(tf, "../../evil", b"escape")
        add_tar_member(tf, "sym", type=tarfile.SYMTYPE, linkname="/etc")
        add_tar_member(tf, "dev", type=tarfile.CHRTYPE)
        add_tar_member(tf, "node.log", b"one")
        add_tar_member(tf, "node.log", b"two")
        add_tar_member(tf, "node.log/inner", b"under a file")
    before = files_under(tmp_path)
    surveyed = survey_upload(archive, ArchiveLimits())
    assert files_under(tmp_path) == before and surveyed.paths == [] and surveyed.files == 1
    extracted = expand_upload(archive, into, ArchiveLimits())
    assert surveyed.skipped == extracted.skipped
    assert [(s.member, s.reason) for s in surveyed.skipped] == [
        ("../../evil", "path climbs out with '..'"), ("sym", "symbolic link: not extracted"),
        ("dev", "device: not extracted"), ("node.log", "clashes with another member of the same path"),
        ("node.log/inner", "clashes with another member of the same path")]  # fmt: skip
    with pytest.raises(PayloadTooLargeError, match="member over 2"):
        survey_upload(archive, ArchiveLimits(max_member_bytes=2))
