"""What the app remembers of one uploaded photo (`Session`), and where it keeps them (`SessionStore`).

A session holds arrays only (no files): the photo, its grey version, the colorization, the prior segments
at full resolution, the overlay, the samples, and the *current* image -- the colorization or a sample, with the
person's recolourings on top. A recolouring of segment k is kept as the RGB values of k's pixels, and one of
a single connected region of k as its pixels' flat indices and RGB values, so a resample (a fresh coherent
sample for every other segment) re-applies them by masked copies: whole segments first, then regions (a
region recoloured after its whole segment stays on top; recolouring a whole segment drops its regions').

The store maps random handles to sessions, forgets a session ``ttl`` seconds after its last use, and keeps
the sessions under ``max_bytes`` in all (their arrays plus `OVERHEAD` each) by forgetting the least
recently used first; a handle it has forgotten answers "unknown or expired". All methods are thread-safe
(requests run in worker threads). A session refers to nothing that refers back to it (its ``make`` is
given the session as an argument), so a forgotten session is freed at once, not at the next cyclic GC.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# What a session costs beside its arrays: its palettes (K segments x 8 colours as dicts), the dataclass,
# the lock, the store's entry: 87 KiB by tracemalloc for the shipped photo model (K = 24; a 1 x 1 photo;
# 59 KiB with K = 16).
OVERHEAD = 96 * 1024


@dataclass
class Session:
    """One photo being worked on. Images are RGB uint8 (h, w, 3), segments uint8 (h, w).

    The grey view, the overlay and the samples are made on first request by ``make(name, session)`` (in a
    worker thread, by the app) and kept, so the colorization is on screen before they are computed."""

    name: str  # a safe file stem for downloads, never a path
    photo: np.ndarray
    colorized: np.ndarray
    segments: np.ndarray
    palettes: list[dict]
    num_samples: int = 0
    make: Callable[[str, Session], np.ndarray] | None = field(default=None, repr=False)
    current: np.ndarray = None  # type: ignore[assignment]
    recoloured: dict[int, np.ndarray] = field(default_factory=dict)  # segment -> its pixels' RGB (n, 3)
    # (segment, the region's first flat pixel index) -> (its flat pixel indices (n,), their RGB (n, 3))
    regions: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    version: int = 0  # bumped at every change of `current`, so its URL changes and caches stay right
    made: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self):
        if self.current is None:
            self.current = self.colorized.copy()

    @property
    def nbytes(self) -> int:
        """What the session holds: its arrays, plus `OVERHEAD`."""
        arrays = [self.photo, self.colorized, self.segments, self.current, *self.made.values()]
        arrays += [*self.recoloured.values(), *(a for pair in self.regions.values() for a in pair)]
        return OVERHEAD + sum(a.nbytes for a in arrays)

    @property
    def recoloured_segments(self) -> list[int]:
        """The segments with a recolouring, whole or of a region, in increasing order."""
        return sorted(set(self.recoloured) | {k for k, _ in self.regions})

    @property
    def names(self) -> tuple[str, ...]:
        """The images a client may fetch."""
        made = ("grey", "overlay", *(f"sample-{i}" for i in range(self.num_samples)))
        return ("photo", "colorized", "current", *made)

    def ready(self, name: str) -> bool:
        return name in ("photo", "colorized", "current") or name in self.made

    def image(self, name: str) -> np.ndarray:
        """An image by name (one of `names`), made now if it has not been yet."""
        if name not in self.names:
            raise KeyError(name)
        if name in ("photo", "colorized", "current"):
            return getattr(self, name)
        with self.lock:
            if name not in self.made:
                self.made[name] = self.make(name, self)
            return self.made[name]

    def set_current(self, base: np.ndarray) -> None:
        """``base`` with every recoloured segment's pixels put back on top becomes the current image."""
        current = base.copy()
        for k, values in self.recoloured.items():
            current[self.segments == k] = values
        flat = current.reshape(-1, 3)
        for index, values in self.regions.values():
            flat[index] = values
        self.current = current
        self.version += 1

    def recolour(self, k: int, image: np.ndarray, where: np.ndarray | None = None) -> int:
        """``image`` -- the current image with segment k's pixels recoloured (`Colorizer.recolour` with
        base = current), only those where ``where`` (bool (h, w): one connected region of k) when given --
        owned by the session from now on, becomes the current image; returns how many pixels changed."""
        changed = int((image != self.current).any(-1).sum())
        if where is None:
            self.recoloured[k] = image[self.segments == k]
            self.regions = {key: v for key, v in self.regions.items() if key[0] != k}
        else:
            index = np.flatnonzero(where & (self.segments == k))
            index = index.astype(np.int32) if image.shape[0] * image.shape[1] < 2**31 else index
            if len(index):
                self.regions[(k, int(index[0]))] = (index, image.reshape(-1, 3)[index])
        self.current = image
        self.version += 1
        return changed

    def clear_recolourings(self) -> None:
        self.recoloured.clear()
        self.regions.clear()


class UnknownHandle(KeyError):
    pass


class SessionStore:
    """handle -> Session, bounded by ``max_bytes`` (least recently used forgotten first) and ``ttl`` seconds
    since last use."""

    def __init__(self, max_bytes: int = 1 << 30, ttl: float = 1800.0, clock=time.monotonic):
        self.max_bytes, self.ttl, self._clock = int(max_bytes), float(ttl), clock
        self._sessions: OrderedDict[str, tuple[Session, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self) -> None:
        now = self._clock()
        for handle in [h for h, (_, used) in self._sessions.items() if now - used > self.ttl]:
            del self._sessions[handle]
        while self._sessions and self.nbytes > self.max_bytes:
            self._sessions.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s, _ in self._sessions.values())

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._sessions)

    @staticmethod
    def new_handle() -> str:
        """A fresh 96-bit random handle (what `add` uses when given none)."""
        return secrets.token_urlsafe(12)

    def add(self, session: Session, handle: str | None = None) -> str:
        """Keep ``session`` under ``handle`` (a new one by default); returns the handle."""
        if session.nbytes > self.max_bytes:
            raise MemoryError(
                f"this image needs {session.nbytes:,} bytes, over the store's {self.max_bytes:,}"
            )
        handle = handle or self.new_handle()
        with self._lock:
            self._sessions[handle] = (session, self._clock())
            self._expire()
        return handle

    def get(self, handle: str) -> Session:
        with self._lock:
            self._expire()
            if handle not in self._sessions:
                raise UnknownHandle(handle)
            session, _ = self._sessions.pop(handle)
            self._sessions[handle] = (session, self._clock())  # most recently used last
            return session

    def remove(self, handle: str) -> bool:
        with self._lock:
            return self._sessions.pop(handle, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()

    def bytes_used(self) -> int:
        with self._lock:
            return self.nbytes
