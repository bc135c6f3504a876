"""Files: atomic writes, and checkpoints as safetensors + JSON (never pickle).

A checkpoint is one file, ``<name>.safetensors``: the tensors, with the metadata (config, step, metrics)
as JSON in its header, written to a temporary file in the same directory and moved into place with
``os.replace`` -- a single atomic write, so a run killed at any moment leaves either the previous
checkpoint or the new one, never new weights paired with an old step. ``<name>.json`` beside it is a
readable copy of the metadata, written after; loading trusts the header (older checkpoints, without one,
are read from the JSON).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
META_KEY = "latentvar.meta"  # the checkpoint's metadata (JSON) in the safetensors header


def _file_mode() -> int:
    """0666 less the process umask (0644 with the usual 022), as `open` would create a file; mkstemp's
    temporary files are 0600, which would leave outputs unreadable to other users and web servers."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    """Write ``name.safetensors`` (tensors + the metadata in its header) in one atomic replace, then the
    readable copy ``name.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".safetensors.tmp")
    os.close(fd)
    try:
        header = {META_KEY: json.dumps(meta, sort_keys=True, default=_json_default)}
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, directory / f"{name}.safetensors")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_json(directory / f"{name}.json", meta)
    return directory


def load_checkpoint(
    directory: str | os.PathLike, name: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by `save_checkpoint`. Pickled files are refused, never unpickled."""
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
    with open(tensors_path, "rb") as f:
        head = f.read(9)
    # a pickle starts with its protocol marker 0x80, a torch.save archive with "PK" (zip); safetensors with
    # an 8-byte little-endian header length (whose low byte can be 0x80 too) and then the JSON header's "{"
    if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise ValueError(
            f"run: {tensors_path} is a pickle or torch.save archive, not safetensors; refusing to load"
        )
    with safe_open(str(tensors_path), framework="pt") as f:
        header = f.metadata() or {}
    if META_KEY in header:
        return load_file(str(tensors_path)), json.loads(header[META_KEY])
    if not meta_path.exists():
        raise FileNotFoundError(f"run: {tensors_path} has no metadata in its header and no {meta_path.name}")
    return load_file(str(tensors_path)), json.loads(meta_path.read_text())


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
