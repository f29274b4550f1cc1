"""The per-customer model artifact: `<customer>.tar.gz` holding `model.json` and `metadata.json`.

Stored below the models prefix as `<run>/<customer>.tar.gz` (`versioned_name`), never overwritten.

`model.json` holds the model of the kind `metadata.json` names under `kind`: for `prophet` (and for
archives written before kinds existed, which carry no `kind`) Prophet's own JSON serialisation, unchanged
(never pickle); for `seasonal-naive` the baseline's JSON (`model/baseline.py`); for `blend` and
`seasonal-change` the Prophet part, stock Prophet JSON, which an entry of `metadata.json` completes
(`model/composed.py`). `metadata.json` also says
where the model came from and carries `model_sha256`, so a truncated or tampered archive is never
trusted. Archives are written to a temporary name in a staging directory (by default beside the target)
and renamed into place, so a reader never sees a partial file. The staging directory must be on the same
mount as the target.

A Prophet archive may also hold `compiled.json` (optional, additive): the compiled predictor's numbers
for that model.json (`model/compiled.py`'s `to_dict()` plus the `model_sha256` it came from), written at
training time so a server loads the model without parsing Prophet's JSON (~5x faster per load).
`metadata.json` then carries `compiled_sha256`; a server trusts compiled.json only when both checksums
agree (`read_compiled`), and compiles model.json itself otherwise, as for archives written without it.

Members are written metadata.json, compiled.json, model.json, so a reader that needs only the first two
(the batch forecast) stops inflating before model.json, which is ~30x larger (`read_archive_contents` with
`model=False`). Readers take the members in any order: archives written before that put model.json first.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "model.json"
METADATA_FILE = "metadata.json"
COMPILED_FILE = "compiled.json"
COMPILED_SHA256_KEY = "compiled_sha256"
ARCHIVE_SUFFIX = ".tar.gz"
TEMP_PREFIX = ".tmp-"
# metadata.json's `kind`: which model model.json holds. An archive without it holds Prophet.
KIND_KEY = "kind"
PROPHET_KIND = "prophet"
BASELINE_KIND = "seasonal-naive"
# model.json: stock Prophet JSON; metadata.json `blend`: the weights and seasonal part (model/blend.py).
BLEND_KIND = "blend"
# model.json: stock Prophet JSON of the week-over-week change; metadata.json `seasonal_change`: the last
# season of values (model/seasonal_change.py).
CHANGE_KIND = "seasonal-change"
MODEL_KINDS = (PROPHET_KIND, BASELINE_KIND, BLEND_KIND, CHANGE_KIND)
# The kinds whose model.json is a Prophet part that metadata.json's entry completes (model/composed.py).
COMPOSED_KINDS = (BLEND_KIND, CHANGE_KIND)
# Bumped when the artifact layout changes, so resume retrains instead of trusting an old layout.
FORMAT_VERSION = 1


class ArtifactError(Exception):
    """An archive or model directory that is missing, truncated or inconsistent."""


def archive_name(customer: str) -> str:
    """The archive's file name inside a run's folder (and in a checkpoint folder): `<customer>.tar.gz`."""
    return f"{customer}{ARCHIVE_SUFFIX}"


def versioned_name(run: str, customer: str) -> str:
    """The archive's key below the models prefix, its TargetModel: `<run>/<customer>.tar.gz`.

    Every run writes into its own folder and never over another run's archive, because a multi-model
    endpoint keeps serving a TargetModel it has cached: a new model needs a new name.
    """
    return f"{run}/{archive_name(customer)}"


def customer_of(archive: Path | str) -> str | None:
    """The customer an archive's file name names; None for a temporary file or another name."""
    name = os.path.basename(archive)
    if name.startswith(TEMP_PREFIX) or not name.endswith(ARCHIVE_SUFFIX):
        return None
    return name[: -len(ARCHIVE_SUFFIX)]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(payload))


def write_archive(
    directory: Path,
    customer: str,
    model_json: str,
    metadata: dict[str, Any],
    staging: Path | None = None,
    kind: str = PROPHET_KIND,
    compiled: dict[str, Any] | None = None,
) -> Path:
    """Atomically write `<directory>/<customer>.tar.gz`, staged in `staging`; returns its path.

    `kind` (one of MODEL_KINDS) is recorded in metadata.json: which model `model_json` holds.
    `compiled` (a CompiledModel's `to_dict()` for this very model.json) adds the optional compiled.json.

    Pass a staging directory outside `directory` when `directory` is watched (SageMaker uploads the
    checkpoints folder continuously, so a temporary file there could reach S3).
    """
    directory.mkdir(parents=True, exist_ok=True)
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind {kind!r} is not one of {', '.join(MODEL_KINDS)}")
    staging = directory if staging is None else staging
    staging.mkdir(parents=True, exist_ok=True)
    metadata = {
        **metadata,
        KIND_KEY: kind,
        "format_version": FORMAT_VERSION,
        "model_sha256": sha256_text(model_json),
    }
    compiled_text = None
    if compiled is not None:
        compiled_text = compiled_json(compiled, metadata["model_sha256"])
        metadata[COMPILED_SHA256_KEY] = sha256_text(compiled_text)
    target = directory / archive_name(customer)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        # model.json last, so it is never inflated by a reader of the other two (see the module docs). An
        # archive cut short anywhere is still refused: by gzip's CRC and length in a full read, by the
        # length alone in a head read.
        _add_member(tar, METADATA_FILE, json.dumps(metadata, indent=1, sort_keys=True).encode())
        if compiled_text is not None:
            _add_member(tar, COMPILED_FILE, compiled_text.encode())
        _add_member(tar, MODEL_FILE, model_json.encode())
    # Level 1: 5x faster than the default for ~15% more bytes on Prophet's JSON.
    payload = gzip.compress(buffer.getvalue(), compresslevel=1, mtime=0)
    return write_atomically(target, payload, staging, temp_suffix=ARCHIVE_SUFFIX)


def compiled_json(compiled: dict[str, Any], model_sha256: str) -> str:
    """compiled.json's text: the compiled numbers and the checksum of the model.json they came from."""
    return json.dumps({"model_sha256": model_sha256, **compiled}, separators=(",", ":"))


def write_atomically(
    target: Path, payload: bytes, staging: Path | None = None, temp_suffix: str = ""
) -> Path:
    """Write `payload` to a temporary file in `staging` (default: beside `target`) and rename it into place,
    so a reader sees the old file or the new one, never a partial one. `staging` must share `target`'s mount.
    """
    staging = target.parent if staging is None else staging
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=temp_suffix, dir=staging)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _verified(model_json: str, metadata: dict[str, Any], where: Path) -> tuple[str, dict[str, Any]]:
    if metadata.get("model_sha256") != sha256_text(model_json):
        raise ArtifactError(f"{where}: model.json does not match the checksum in metadata.json")
    return model_json, metadata


@dataclass(frozen=True)
class ArchiveContents:
    """An archive read once: its metadata, its compiled.json when the checksums vouch for it, and model.json,
    which is verified only when asked for (a reader of the compiled form never needs it)."""

    path: Path
    metadata: dict[str, Any]
    compiled: dict[str, Any] | None  # compiled.json's document; None when the archive has none
    model_bytes: bytes | None  # None when read with model=False: model_json() then reads the archive again

    def model_json(self) -> str:
        """model.json's text, verified against metadata.json's checksum (ArtifactError otherwise)."""
        if self.model_bytes is None:
            return read_archive_contents(self.path).model_json()
        try:
            text = self.model_bytes.decode()
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"{self.path}: unreadable archive ({type(exc).__name__}: {exc})") from exc
        return _verified(text, self.metadata, self.path)[0]


def read_archive_contents(path: Path, *, model: bool = True) -> ArchiveContents:
    """Read an archive in one pass and verify metadata.json and compiled.json (when present) against each
    other; model.json is checked by `ArchiveContents.model_json`. ArtifactError for a missing, truncated or
    inconsistent archive (compiled.json that does not match metadata.json's checksums included).

    `model=False` is for a reader of compiled.json alone: an archive that stores metadata.json and
    compiled.json before model.json (write_archive's order) is inflated only up to model.json, and vouched
    for by those two members' checksums and the gzip trailer's length, as a server that trusts compiled.json
    never reads model.json either (its bytes, and so gzip's CRC over them, are not checked). Any other
    archive is read whole, as with `model=True`.
    """
    members: dict[str, bytes] = {}
    try:
        # The whole (small) file read and gunzipped at once, the tar then parsed in memory: faster than r:gz.
        with open(path, "rb") as handle:
            data = handle.read()
        head = None if model else _head_members(data)
        if head is not None:
            metadata, compiled = _checked_members(head[METADATA_FILE], head[COMPILED_FILE], path)
            return ArchiveContents(path, metadata, compiled, None)
        for name, is_file, payload in _tar_members(_gunzipped(data)):
            if not is_file or name not in (MODEL_FILE, METADATA_FILE, COMPILED_FILE):
                raise ArtifactError(f"{path}: unexpected member {name!r}")
            members[name] = payload
        metadata, compiled = _checked_members(members[METADATA_FILE], members.get(COMPILED_FILE), path)
        model_bytes = members[MODEL_FILE]
    except ArtifactError:
        raise
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: no such archive") from exc
    except (OSError, EOFError, zlib.error, tarfile.TarError, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable archive ({type(exc).__name__}: {exc})") from exc
    return ArchiveContents(path, metadata, compiled, model_bytes)


def _checked_members(
    metadata_bytes: bytes, compiled_bytes: bytes | None, path: Path
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """metadata.json's and compiled.json's documents, compiled.json verified against metadata.json."""
    metadata = json.loads(metadata_bytes)
    if not isinstance(metadata, dict):
        raise ValueError("metadata.json is not an object")
    if compiled_bytes is None:
        return metadata, None
    compiled_text = compiled_bytes.decode()
    if metadata.get(COMPILED_SHA256_KEY) != sha256_text(compiled_text):
        raise ArtifactError(f"{path}: {COMPILED_FILE} does not match the checksum in metadata.json")
    compiled = json.loads(compiled_text)
    if not isinstance(compiled, dict) or compiled.get("model_sha256") != metadata.get("model_sha256"):
        raise ArtifactError(f"{path}: {COMPILED_FILE} was not made from this archive's model.json")
    return metadata, compiled


# Inflated per step while looking for model.json's header: ~2 steps hold metadata.json and compiled.json
# (a larger step inflates more of model.json than it saves in calls).
_HEAD_STEP = 4096


def _head_members(data: bytes) -> dict[str, bytes] | None:
    """metadata.json and compiled.json of a gzip'd tar that holds exactly those two and then model.json as
    its last member, inflated only up to model.json's header; None for any other archive (another order,
    no compiled.json, a header tarfile must read, a cut or corrupt stream), which the caller reads whole.

    Not inflating model.json leaves gzip's CRC unchecked, so the stream's length in the gzip trailer is
    checked against the tar's length instead: a cut-short file fails that. Nothing after model.json's
    header is looked at (a member that a full read refuses may follow it, within the tar's padding).
    """
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    raw, pending = b"", data
    found: dict[str, bytes] = {}
    offset = 0
    try:
        while True:
            while offset + _TAR_BLOCK <= len(raw):
                header = _plain_header(raw[offset : offset + _TAR_BLOCK])
                if header is None or header == _END_OF_ARCHIVE:
                    return None
                name, size = header
                start = offset + _TAR_BLOCK
                if name == MODEL_FILE:
                    if len(found) < 2 or _stored_length(data) != _tar_length(start + _padded(size)):
                        return None
                    return found
                if name not in (METADATA_FILE, COMPILED_FILE) or name in found:
                    return None
                if start + size > len(raw):
                    break  # inflate more
                found[name] = raw[start : start + size]
                offset = start + _padded(size)
            inflated = decompressor.decompress(pending, _HEAD_STEP)
            if not inflated:
                return None  # the stream ended (or stalled) before model.json
            raw += inflated
            pending = decompressor.unconsumed_tail
    except zlib.error:
        return None


def _stored_length(gzipped: bytes) -> int:
    """The uncompressed length a gzip member's trailer records (ISIZE: modulo 2**32)."""
    return int.from_bytes(gzipped[-4:], "little") if len(gzipped) >= 18 else -1


def _tar_length(members_end: int) -> int:
    """A tar's length as tarfile (and GNU tar) write it, modulo 2**32: the members, two zero blocks, padded
    to whole 10,240-byte records."""
    return (-(-(members_end + 2 * _TAR_BLOCK) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE) % 2**32


def _gunzipped(data: bytes) -> bytes:
    """The one gzip member write_archive writes, by zlib directly (gzip.decompress's member loop costs ~15%
    on a small archive); anything else (several members, a cut or corrupt stream) gzip reads or refuses."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = decompressor.decompress(data)
    except zlib.error:
        raw = b""
    if decompressor.eof and not decompressor.unused_data:
        return raw
    return gzip.decompress(data)


_TAR_BLOCK = 512
_REGULAR_FILE_TYPES = (b"0", b"\0")
_END_OF_ARCHIVE = ("", -1)


def _padded(size: int) -> int:
    return -(-size // _TAR_BLOCK) * _TAR_BLOCK


def _plain_header(header: bytes) -> tuple[str, int] | None:
    """(name, size) of a plain regular-file header block (what write_archive writes: a short name, no
    extended header, a good checksum), _END_OF_ARCHIVE for the zero block ending the archive, None for
    anything else (an extended or long-name header, a directory, a bad checksum): tarfile's to read."""
    if not any(header):
        return _END_OF_ARCHIVE
    kind = header[156:157]
    size_field = header[124:136].strip(b"\0 ")
    checksum_field = header[148:156].strip(b"\0 ")
    # A regular file named without the ustar prefix field.
    plain = kind in _REGULAR_FILE_TYPES and not (header[257:262] == b"ustar" and any(header[345:500]))
    if not plain or not size_field.isdigit() or not checksum_field.isdigit():
        return None
    if int(checksum_field, 8) != 256 + sum(header[:148]) + sum(header[156:]):  # 8 spaces stand for it
        return None
    return header[:100].split(b"\0", 1)[0].decode(), int(size_field, 8)


def _tar_members(raw: bytes) -> list[tuple[str, bool, bytes]]:
    """(name, is a regular file, payload) of each member of an uncompressed tar held in memory.

    Plain file headers (`_plain_header`) are read directly, ~5x cheaper than tarfile's per-member objects;
    anything else (an extended or long-name header, a bad header checksum, a truncated member) is left to
    tarfile, which reads it or raises TarError.
    """
    members = []
    offset = 0
    while offset + _TAR_BLOCK <= len(raw):
        header = _plain_header(raw[offset : offset + _TAR_BLOCK])
        if header == _END_OF_ARCHIVE:
            return members
        if header is None:
            break
        name, size = header
        start = offset + _TAR_BLOCK
        if start + size > len(raw):
            break
        members.append((name, True, raw[start : start + size]))
        offset = start + _padded(size)
    return _tarfile_members(raw)


def _tarfile_members(raw: bytes) -> list[tuple[str, bool, bytes]]:
    members = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for info in tar:
            extracted = tar.extractfile(info) if info.isfile() else None
            members.append((info.name, info.isfile(), extracted.read() if extracted else b""))
    return members


def read_archive(path: Path) -> tuple[str, dict[str, Any]]:
    """Read and verify an archive; raises ArtifactError for anything but a complete, consistent one."""
    contents = read_archive_contents(path)
    return contents.model_json(), contents.metadata


def model_kind(metadata: dict[str, Any]) -> str:
    """The kind of model an archive holds (Prophet when metadata.json predates kinds); ArtifactError for an
    unknown one (an archive from a newer fleetcast)."""
    kind = metadata.get(KIND_KEY, PROPHET_KIND)
    if kind not in MODEL_KINDS:
        raise ArtifactError(
            f"metadata.json names model kind {kind!r}; this fleetcast serves {', '.join(MODEL_KINDS)}"
        )
    return kind


def peek_kind(directory: Path) -> str:
    """The kind a model directory's metadata.json names, read without verifying the model.

    For choosing a loader; the loader then reads and verifies everything, and reports a broken directory
    itself (an unreadable metadata.json is taken as Prophet here, so that report is the usual one).
    """
    try:
        metadata = json.loads((Path(directory) / METADATA_FILE).read_bytes())
    except (OSError, ValueError):
        return PROPHET_KIND
    return model_kind(metadata) if isinstance(metadata, dict) else PROPHET_KIND


def read_compiled(directory: Path) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(compiled.json's text, its document, metadata) of a model directory, when compiled.json can be trusted
    without reading model.json: metadata.json names its checksum, and it names the model.json checksum
    metadata.json holds. None otherwise (no compiled.json, an archive written before it, any mismatch):
    the caller then reads and compiles model.json (`read_model_dir`)."""
    try:
        metadata = json.loads((directory / METADATA_FILE).read_bytes())
        if not isinstance(metadata, dict) or COMPILED_SHA256_KEY not in metadata:
            return None
        text = (directory / COMPILED_FILE).read_text()
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if metadata[COMPILED_SHA256_KEY] != sha256_text(text):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("model_sha256") != metadata.get("model_sha256"):
        return None
    return text, document, metadata


def read_metadata_or_none(path: Path) -> dict[str, Any] | None:
    """The verified metadata of an archive, or None when it is missing or cannot be trusted."""
    try:
        return read_archive(path)[1]
    except ArtifactError:
        return None


def read_model_dir(directory: Path) -> tuple[str, dict[str, Any]]:
    """Read and verify an extracted model directory (what a multi-model endpoint hands the container)."""
    model_path, metadata_path = directory / MODEL_FILE, directory / METADATA_FILE
    if not directory.is_dir():
        raise ArtifactError(f"model directory {directory} does not exist")
    try:
        model_json = model_path.read_text()
        metadata = json.loads(metadata_path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(f"{directory}: missing {Path(exc.filename).name}") from exc
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{directory}: unreadable model files ({exc})") from exc
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{directory}: metadata.json is not an object")
    return _verified(model_json, metadata, directory)


def remove_stale_temp_files(directory: Path) -> int:
    """Delete temp archives left by killed writers in a staging directory.

    Never call this on a synced folder such as the checkpoints: SageMaker mirrors local deletes to S3.
    """
    removed = 0
    if directory.is_dir():
        for leftover in directory.glob(f"{TEMP_PREFIX}*{ARCHIVE_SUFFIX}"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed
