"""Small real data sets bundled with dependencies (no downloads): sklearn's iris and wine."""

from __future__ import annotations

import torch


def load_tabular(name: str, standardize: bool = True, dtype=torch.float64):
    """(X (n, d), labels (n,), feature names, class names) of sklearn's bundled `iris` or `wine`."""
    from sklearn import datasets

    loaders = {"iris": datasets.load_iris, "wine": datasets.load_wine}
    if name not in loaders:
        raise ValueError(f"data: expected one of {sorted(loaders)}, got {name!r}")
    d = loaders[name]()
    x = torch.as_tensor(d.data, dtype=dtype)
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
    return x, torch.as_tensor(d.target), list(d.feature_names), list(d.target_names)
