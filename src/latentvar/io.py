"""Files: atomic writes, and checkpoints as safetensors + JSON (never pickle).

A checkpoint is one file, ``<name>.safetensors``: the tensors, with the metadata (config, step, metrics)
as JSON in its header, written to a temporary file in the same directory and moved into place with
``os.replace`` -- a single atomic write, so a run killed at any moment leaves either the previous
checkpoint or the new one, never new weights paired with an old step. ``<name>.json`` beside it is a
readable copy of the metadata, written after; loading trusts the header (older checkpoints, without one,
are read from the JSON).

Faults (tests/test_faults.py, bench/fault_injection.py): the header also holds a SHA-256 of the metadata and
of every tensor (name, dtype, shape, bytes), so a truncated or bit-flipped checkpoint is refused with a
ValueError naming the file instead of loading wrong values (checkpoints from before the checksum still
load, unverified); safetensors' own errors are wrapped the same way, and nothing is ever unpickled. A write
that meets a full disk (ENOSPC, EDQUOT) raises `DiskFullError` and leaves the file it was replacing as it
was; temporary files left by a killed write are removed by the next run in that folder
(`remove_stale_temporaries`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
META_KEY = "latentvar.meta"  # the checkpoint's metadata (JSON) in the safetensors header
SUM_KEY = "latentvar.sha256"  # SHA-256 of that JSON and of every tensor (`checksum`), in the header too
HEADER_KEYS = {META_KEY, SUM_KEY}
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
MAX_HEADER_BYTES = 64 << 20  # a safetensors header (safetensors' own limit is 100 MB), or a metadata JSON
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}  # fmt: skip


class DiskFullError(OSError):
    """A write that ran out of space (``errno`` ENOSPC or EDQUOT); the file it was to replace is unchanged."""

    def __str__(self) -> str:
        return str(self.strerror)


def _file_mode() -> int:
    """0666 less the process umask (0644 with the usual 022), as `open` would create a file; mkstemp's
    temporary files are 0600, which would leave outputs unreadable to other users and web servers."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` (``.<name>.<random>.tmp``), fsync it and move it
    into place: ``path`` holds the old bytes or the new ones, never a part. A full disk raises
    `DiskFullError` (``path`` unchanged)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            was = "is unchanged" if path.exists() else "was not written"
            raise DiskFullError(
                err.errno, f"{path}: {os.strerror(err.errno)} writing {len(data):,} bytes; {path.name} {was}"
            ) from err
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a power cut after it keeps the new name); best effort, as
    some file systems refuse to fsync a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: str | os.PathLike, name: str) -> list[Path]:
    """Remove the temporary files a killed `save_checkpoint` of ``name`` left in ``directory``
    (``.<name>.safetensors.<random>.tmp``, ``.<name>.json.<random>.tmp``, and older versions'
    ``.<name>.<random>.safetensors.tmp``); call it only where no other process is writing that checkpoint.
    Returns what was removed."""
    directory = Path(directory)
    stale = sorted(directory.glob(f".{name}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """The JSON every writer here uses: indented, sorted keys, tensors / paths / numpy scalars converted."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json_text(obj))


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_checkpoint(
    directory: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict, name: str = "checkpoint"
) -> Path:
    """Write ``name.safetensors`` (tensors + the metadata and its checksum in the header) in one atomic
    replace, then the readable copy ``name.json``. A full disk raises `DiskFullError`, the previous
    checkpoint unchanged."""
    directory = Path(directory)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta_text = json.dumps(meta, sort_keys=True, default=_json_default)
    header = {META_KEY: meta_text, SUM_KEY: checksum(meta_text, tensors)}
    atomic_write_bytes(directory / f"{name}.safetensors", save(tensors, metadata=header))
    atomic_write_json(directory / f"{name}.json", meta)
    return directory


def checksum(meta_text: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the metadata JSON and of each tensor's name, dtype, shape and bytes, in name order:
    what a checkpoint's header records and `load_checkpoint` verifies."""
    digest = hashlib.sha256(meta_text.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode("utf-8"))
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def load_checkpoint(
    directory: str | os.PathLike, name: str = "checkpoint", max_bytes: int | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by `save_checkpoint`. Pickled files are refused, never unpickled. The
    file's size must be what its header describes, and at most ``max_bytes`` (None: any), checked before
    its tensors are read; metadata kept in the JSON beside it (older checkpoints) is at most 64 MiB."""
    directory = Path(directory)
    if directory.is_file():
        if directory.suffix in PICKLE_SUFFIXES:
            raise ValueError(f"run: {directory} looks like a pickle; latentvar loads only safetensors + JSON")
        directory = directory.parent
    tensors_path = directory / f"{name}.safetensors"
    meta_path = directory / f"{name}.json"
    if not tensors_path.exists():
        pickles = (
            [p.name for p in directory.glob("*") if p.suffix in PICKLE_SUFFIXES] if directory.is_dir() else []
        )
        hint = f" (found pickles {pickles}, which latentvar refuses to load)" if pickles else ""
        raise FileNotFoundError(f"run: no checkpoint '{name}' (.safetensors + .json) in {directory}{hint}")
    # One open file: safetensors' safe_open reopens the file by name for the tensor bytes
    # (torch.UntypedStorage.from_file), so a writer replacing it meanwhile could pair one version's header
    # with the next one's tensors (the checksum then refuses it). Bytes read from one descriptor are one
    # version. The header is read first and must describe the file's size exactly, so a huge file (or a
    # header claiming one) is refused before its bytes are read.
    corrupt = f"run: {tensors_path} is corrupt or truncated"
    with open(tensors_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(9)
        # a pickle starts with its protocol marker 0x80, a torch.save archive with "PK" (zip); safetensors
        # with an 8-byte little-endian header length (whose low byte can be 0x80 too) and the JSON's "{"
        if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):
            raise ValueError(
                f"run: {tensors_path} is a pickle or torch.save archive, not safetensors; refusing to load"
            )
        if len(head) < 9:
            raise ValueError(f"{corrupt} ({size} bytes)")
        (length,) = struct.unpack("<Q", head[:8])  # the safetensors layout: u64 header length, JSON header
        if length > min(size - 8, MAX_HEADER_BYTES):
            raise ValueError(f"{corrupt} (a header of {length:,} bytes in a file of {size:,})")
        f.seek(8)
        header_bytes = f.read(length)
        described = 8 + length + _described_bytes(header_bytes, corrupt)
        if described != size:
            raise ValueError(f"{corrupt} (its header describes {described:,} bytes, the file has {size:,})")
        if max_bytes is not None and size > max_bytes:
            raise ValueError(
                f"run: {tensors_path} is {size:,} bytes, over the {max_bytes:,} this loader reads"
            )
        data = head[:8] + header_bytes + f.read(size - 8 - length)
    try:
        header = json.loads(header_bytes).get("__metadata__") or {}
        tensors = load_bytes(data)
    except Exception as err:  # noqa: BLE001 -- safetensors' own errors (bad length, JSON, offsets, dtype)
        raise ValueError(f"{corrupt} ({type(err).__name__}: {' '.join(str(err).split())})") from None
    del data
    if unknown := sorted(set(header) - HEADER_KEYS):
        raise ValueError(f"{corrupt} (unknown header keys {unknown})")
    if SUM_KEY in header:
        if META_KEY not in header or checksum(header[META_KEY], tensors) != header[SUM_KEY]:
            raise ValueError(f"{corrupt} (its checksum does not match its metadata and tensors)")
    if META_KEY in header:
        text, source = header[META_KEY], tensors_path
    elif not meta_path.exists():
        raise FileNotFoundError(f"run: {tensors_path} has no metadata in its header and no {meta_path.name}")
    elif meta_path.stat().st_size > MAX_HEADER_BYTES:
        raise ValueError(f"run: {meta_path} is over {MAX_HEADER_BYTES:,} bytes; not a checkpoint's metadata")
    else:  # older checkpoints: the metadata only in the JSON beside the tensors
        text, source = meta_path.read_text(), meta_path
    try:
        meta = json.loads(text)
    except ValueError as err:
        raise ValueError(f"run: {source} holds metadata that is not JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"run: {source} holds metadata that is not a JSON object")
    return tensors, meta


def _described_bytes(header_bytes: bytes, corrupt: str) -> int:
    """The tensor bytes a safetensors header describes: the end of its last tensor, each tensor's
    extent matching its dtype and shape."""
    try:
        header = json.loads(header_bytes)
        end = 0
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            start, stop = entry["data_offsets"]
            count = math.prod(entry["shape"])
            if not (0 <= start <= stop and stop - start == count * DTYPE_BYTES[entry["dtype"]]):
                raise ValueError(
                    f"tensor {key!r}: offsets {start}..{stop} for {entry['dtype']} {entry['shape']}"
                )
            end = max(end, stop)
    except Exception as err:  # noqa: BLE001 -- anything malformed in the header
        raise ValueError(
            f"{corrupt} (header: {type(err).__name__}: {' '.join(str(err).split())[:200]})"
        ) from None
    return end


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str = "optimizer") -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state (Adam's moments, step counts) as flat named tensors
    ``{prefix}.{param index}.{key}`` for a safetensors checkpoint; hyper-parameters are not stored, they
    come from the optimiser's construction."""
    out = {}
    for i, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{prefix}.{i}.{key}"] = torch.as_tensor(value)
    return out


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str = "optimizer"
) -> None:
    """Restore what `optimizer_tensors` saved under ``prefix`` into ``optimizer`` (same parameters)."""
    state_dict = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)
