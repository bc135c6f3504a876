"""Progress bars for long work (tqdm on stderr); quiet under pytest unless asked."""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(iterable=None, desc: str | None = None, total: int | None = None, disable: bool = False, **kw):
    """A tqdm bar on stderr. TQDM_DISABLE=1 (set by the tests) silences every bar: tqdm reads it only for
    arguments left unset, and `disable` is always passed here."""
    disable = disable or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, desc=desc, total=total, disable=disable, dynamic_ncols=True, leave=False, **kw)
