"""Photo collections for streaming training: which files there are, which split each is in, how to read one.

``open_collection(data)`` accepts
- a prepared corpus (a folder holding ``manifest.json``, `latentvar colorize prepare photos`): its splits;
- a folder tree of images (``IMAGE_SUFFIXES``), walked in sorted order directory by directory;
- a text file listing image paths, one a line (relative paths are relative to the list's folder; blank lines
  and lines starting with ``#`` are ignored), in the order listed;
- tar shards in WebDataset layout (``<key>.<ext>`` members, images by extension): one ``.tar`` file or a
  folder of ``.tar`` files (sorted). The headers of every shard are read once (stdlib `tarfile`) into an
  index of (shard, offset, size), so any sample can be read by one seek: training draws any sample at any
  step, which a streaming reader cannot do (see docs/colorize.md, "Training at scale").

A collection without splits of its own (all but the corpus) is split by a hash of each file's name
relative to the collection (`photos.split_of`: 80 / 10 / 10 train / val / test), fixed whatever the
machine, the order or the number of files. Names are held in one bytes buffer with an offsets array, never
one Python object per file, so memory stays flat in the number of photos and loader workers share them.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentvar.colorize.crops import corpus_dir
from latentvar.colorize.images import IMAGE_SUFFIXES

TAR_SUFFIX = ".tar"


class Names:
    """n strings in one uint8 buffer + int64 offsets: ``names[i]`` -> str; no Python object per name."""

    def __init__(self, names=()):
        buf, offsets = bytearray(), [0]
        for name in names:
            buf += name.encode("utf-8", "surrogateescape")
            offsets.append(len(buf))
        self.buf = np.frombuffer(bytes(buf), np.uint8)
        self.offsets = np.asarray(offsets, np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.buf[a:b].tobytes().decode("utf-8", "surrogateescape")


@dataclass
class Collection:
    """The files of one collection; ``train`` / ``val`` are int64 indices into ``names`` (sorted)."""

    kind: str  # 'corpus', 'folder', 'list' or 'tar'
    root: Path  # names are relative to it (tar: the shards' folder; a list: its folder, or absolute names)
    names: Names
    train: np.ndarray
    val: np.ndarray
    shards: list[str] | None = None  # tar: shard file names; per sample its shard, data offset and size
    where: np.ndarray | None = None  # tar: (n, 3) int64

    def __len__(self) -> int:
        return len(self.names)

    def source(self, i: int):
        """What Pillow opens for file ``i``: a path, or (tar) the member's bytes."""
        if self.kind != "tar":
            return str(self.root / self.names[i])
        shard, offset, size = (int(v) for v in self.where[i])
        with open(self.root / self.shards[shard], "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise OSError(f"truncated member {self.names[i]!r}")
        return io.BytesIO(data)

    def label(self, i: int) -> str:
        """File ``i`` for messages: its path (tar: ``shard.tar/member``)."""
        return str(self.root / self.names[i])


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _walk(root: Path, rel: str = ""):
    """Image files under ``root`` (relative names), sorted per directory: no global list is built."""
    with os.scandir(root / rel if rel else root) as it:
        entries = sorted((e.name, e.is_dir(follow_symlinks=True)) for e in it)
    for name, is_dir in entries:
        path = f"{rel}/{name}" if rel else name
        if is_dir:
            yield from _walk(root, path)
        elif _is_image(name):
            yield path


def _hash_split(names: Names) -> tuple[np.ndarray, np.ndarray]:
    from latentvar.colorize.photos import split_of

    split = np.array([split_of(names[i]) for i in range(len(names))]) if len(names) else np.array([], str)
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(train) == 0:  # a handful of files, all hashed out of train: train on all of them
        train = np.arange(len(names))
    return train, val


def _tar_index(shards: list[Path]) -> tuple[Names, np.ndarray]:
    """(member names as ``shard/member``, (shard, data offset, size) per image member) of WebDataset shards."""
    names, where = [], []
    for s, shard in enumerate(shards):
        try:
            with tarfile.open(shard, "r:") as tar:
                for m in tar:
                    if m.isfile() and _is_image(m.name):
                        names.append(f"{shard.name}/{m.name}")
                        where.append((s, m.offset_data, m.size))
        except (tarfile.TarError, OSError) as err:
            raise ValueError(f"data: cannot read the tar shard {str(shard)!r} ({err})") from None
    return Names(names), np.asarray(where, np.int64).reshape(-1, 3)


def open_collection(data: str | os.PathLike) -> Collection:
    """The collection ``data`` names (see the module docstring); ValueError naming ``data`` otherwise."""
    path = Path(data)
    root = corpus_dir(path)
    if root is not None:
        from latentvar.colorize.photos import load_photo_split

        rel = [f"images/{p.name}" for split in ("train", "val") for p in load_photo_split(root, split)]
        n_train = len(load_photo_split(root, "train"))
        names = Names(rel)
        return Collection("corpus", root, names, np.arange(n_train), np.arange(n_train, len(names)))
    if path.is_file() and path.suffix.lower() == TAR_SUFFIX:
        names, where = _tar_index([path])
        return _finish(Collection("tar", path.parent, names, *_hash_split(names), [path.name], where))
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError) as err:
            raise ValueError(f"data: {str(path)!r} is not a text file listing image paths ({err})") from None
        listed = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        names = Names(listed)  # as written: the split hashes them so (moving the list moves nothing)
        return _finish(Collection("list", path.parent, names, *_hash_split(names)))
    if not path.is_dir():
        raise ValueError(
            f"data: expected 'twemoji', a folder, a list file or a .tar shard, got {str(path)!r}"
        )
    names = Names(_walk(path))
    if len(names) == 0:
        shards = sorted(p for p in path.iterdir() if p.suffix.lower() == TAR_SUFFIX and p.is_file())
        if shards:
            names, where = _tar_index(shards)
            coll = Collection("tar", path, names, *_hash_split(names), [s.name for s in shards], where)
            return _finish(coll)
    return _finish(Collection("folder", path, names, *_hash_split(names)))


def _finish(coll: Collection) -> Collection:
    if len(coll) == 0:
        raise ValueError(f"data: no image files ({', '.join(IMAGE_SUFFIXES)}) in {str(coll.root)!r}")
    return coll


def is_photo_collection(data: str) -> bool:
    """True when ``data`` trains on random crops by default: a corpus, a list file, tar shards, or a folder
    whose images are mostly photo-sized (short side >= 96 px, by the headers of up to 16 files)."""
    if data == "twemoji":
        return False
    path = Path(data)
    if corpus_dir(path) is not None or path.is_file():
        return True
    if not path.is_dir():
        return False
    from PIL import Image

    sides = []
    for rel in _walk(path):
        try:
            with Image.open(path / rel) as im:
                sides.append(min(im.size))
        except Exception:  # noqa: BLE001 (an unreadable file says nothing about the rest)
            continue
        if len(sides) == 16:
            break
    if not sides:
        return any(p.suffix.lower() == TAR_SUFFIX for p in path.iterdir())
    return float(np.median(sides)) >= 96
