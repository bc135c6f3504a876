"""Progress bars for long work (tqdm on stderr); quiet under pytest unless asked."""

from __future__ import annotations

from tqdm.auto import tqdm


def progress(iterable=None, desc: str | None = None, total: int | None = None, disable: bool = False, **kw):
    return tqdm(iterable, desc=desc, total=total, disable=disable, dynamic_ncols=True, leave=False, **kw)
