"""A colorization run's metadata checked like any other input before anything is built from it (issue 23).

The checkpoint's SHA-256 guards against corruption, not against edits (anyone can recompute it), and the
metadata decides allocations: ``work_side`` the work grid, ``config.width`` / ``segments`` / ``hidden``
the network, ``bin_prior`` a tensor. `check_run` checks every field `Colorizer` reads -- its type and its
range -- and that the tensors are the ones the config describes (names, shapes, floating dtypes, finite
values), comparing against the model built on the ``meta`` device (shapes only, nothing allocated).
A bad field is a ValueError ``run: <field>: expected ..., got ... (in <file>)``, so the command line ends
``error: run: <field>: ...`` with exit 2 (tests/test_run_fuzz.py fuzzes every field).

Ranges: ``config.segments`` 1..255 (segment maps are uint8), ``config.width`` 1..1024, ``config.hidden``
1..4096, ``config.size`` 4..1024 (the emoji model's work square), ``work_side`` 16..512 (a photo's
short side on the work grid: at 512 a 4:3 photo's per-pixel colour laws take 0.4 GB), 2..1024 ab bins
with centres in [-128, 128], ``temperature`` in (0, 100], ``rebalance`` in [0, 10], ``bin_prior`` one
positive number per bin.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

KINDS = {"colorize-latent": "latent", "colorize-per-pixel": "per-pixel", "colorize-regression": "regression"}
INTEGERS = {  # config key -> (low, high)
    "segments": (1, 255),
    "width": (1, 1024),
    "hidden": (1, 4096),
    "size": (4, 1024),
}
WORK_SIDE = (16, 512)
MAX_BINS = 1024
# a colorizer file: the shipped photo model (width 32) is 1.7 MB; it grows as width²
MAX_CHECKPOINT_BYTES = 1 << 30


class _Field:
    """Raises ``run: <field>: expected <what>, got <value> (in <where>)``."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, expected: str, got: Any) -> None:
        shown = repr(got)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ValueError(f"run: {field}: expected {expected}, got {shown} (in {self.where})")

    def integer(self, field: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(field, f"an integer in {low}..{high}", value)
        return value

    def number(self, field: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not (low < value if low_open else low <= value) or value > high:
            self.fail(field, f"a number in {'(' if low_open else '['}{low:g}, {high:g}]", value)
        return float(value)


def check_run(meta: Any, tensors: dict[str, Tensor], where: str) -> None:
    """Check a colorization checkpoint's metadata and tensors (module docstring); ``where`` names the file
    in the messages. Returns nothing: a bad field raises ValueError ``run: <field>: ...``."""
    f = _Field(where)
    if not isinstance(meta, dict):
        f.fail("metadata", "a JSON object", type(meta).__name__)
    kind = meta.get("kind")
    if kind not in KINDS:
        f.fail("kind", f"one of {sorted(KINDS)}", kind)
    config = meta.get("config")
    if not isinstance(config, dict):
        f.fail("config", "a JSON object of the training settings", config)
    if config.get("model") != KINDS[kind]:
        f.fail("config.model", f"{KINDS[kind]!r} (the checkpoint's kind is {kind!r})", config.get("model"))
    from latentvar.colorize.model import ARCHS

    arch = config.get("arch")
    if arch is not None and arch not in ARCHS:
        f.fail("config.arch", f"one of {list(ARCHS)} (or absent: emoji)", arch)
    for key, (low, high) in INTEGERS.items():
        f.integer(f"config.{key}", config.get(key), low, high)
    _check_prior(f, config)
    if "work_side" in meta:
        f.integer("work_side", meta["work_side"], *WORK_SIDE)
    if "temperature" in meta:
        f.number("temperature", meta["temperature"], 0, 100, low_open=True)
    if "rebalance" in meta:
        f.number("rebalance", meta["rebalance"], 0, 10)
    q = _check_bins(f, tensors)
    if meta.get("num_bins") is not None:
        f.integer("num_bins", meta["num_bins"], q, q)
    prior = meta.get("bin_prior")
    if prior is not None:
        if not isinstance(prior, list) or len(prior) != q:
            f.fail("bin_prior", f"a list of {q} numbers (one per bin)", type(prior).__name__)
        for i, p in enumerate(prior):
            f.number(f"bin_prior[{i}]", p, 0, 1, low_open=True)
    _check_tensors(f, tensors, kind, config, q)


def _check_prior(f: _Field, config: dict) -> None:
    """The trunk's ``depth`` and the latent model's segment prior settings (absent in older runs)."""
    from latentvar.colorize.prior import PRIORS

    if "depth" in config:
        f.integer("config.depth", config["depth"], 0, 32)
    if config.get("model") != "latent":
        return
    if "colour_law" in config:
        from latentvar.colorize.model import COLOUR_LAWS

        if config["colour_law"] not in COLOUR_LAWS:
            f.fail(
                "config.colour_law", f"one of {list(COLOUR_LAWS)} (or absent: linear)", config["colour_law"]
            )
    if config.get("prior", "lightness") == "lightness":
        return
    if config["prior"] not in PRIORS:
        f.fail("config.prior", f"one of {list(PRIORS)} (or absent: lightness)", config["prior"])
    f.integer("config.smooth_steps", config.get("smooth_steps"), 0, 8)
    for key in ("balance", "invariance"):
        f.number(f"config.{key}", config.get(key), 0, 1e3)
    if "confidence" in config:
        f.number("config.confidence", config["confidence"], 0, 1e3)
    if "superpixels" in config:
        from latentvar.colorize.prior import MAX_SUPERPIXEL_SCALE

        f.number("config.superpixels", config["superpixels"], 0, MAX_SUPERPIXEL_SCALE)


def model_options(config: dict) -> dict:
    """`model.build_model`'s ``depth`` and prior keyword arguments for a checked config."""
    options = {"depth": config.get("depth", 0)}
    if config.get("model") == "latent":
        options["prior"] = config.get("prior", "lightness")
        if "colour_law" in config:
            options["colour_law"] = config["colour_law"]
        if options["prior"] == "learned":
            options |= {k: config[k] for k in ("smooth_steps", "balance", "invariance")}
            if config.get("confidence"):
                options["confidence"] = config["confidence"]
            if config.get("superpixels"):
                options["superpixels"] = config["superpixels"]
    return options


def _check_bins(f: _Field, tensors: dict[str, Tensor]) -> int:
    centres = tensors.get("model.bin_centres")
    if centres is None:
        f.fail("model.bin_centres", "the ab bin centres tensor (q, 2)", None)
    shape = tuple(centres.shape)
    if len(shape) != 2 or shape[1] != 2 or not 2 <= shape[0] <= MAX_BINS:
        f.fail("model.bin_centres", f"a tensor of shape (q, 2) with 2 <= q <= {MAX_BINS}", shape)
    if not centres.is_floating_point() or not bool(torch.isfinite(centres).all()):
        f.fail("model.bin_centres", "finite floating-point values", str(centres.dtype))
    if float(centres.abs().max()) > 128:
        f.fail("model.bin_centres", "ab values in [-128, 128]", float(centres.abs().max()))
    return shape[0]


def _check_tensors(f: _Field, tensors: dict[str, Tensor], kind: str, config: dict, q: int) -> None:
    """The tensors under ``model.`` are exactly those of the model the config describes, with their
    shapes (built on the meta device: no memory), floating-point and finite."""
    from latentvar.colorize.model import build_model

    arch = config.get("arch") or "emoji"
    with torch.device("meta"):
        model = build_model(
            KINDS[kind],
            torch.empty(q, 2),
            config["segments"],
            config["width"],
            config["hidden"],
            arch,
            **model_options(config),
        )
    expected = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: v for k, v in tensors.items() if k.startswith("model.")}
    for name, shape in expected.items():
        if name not in saved:
            f.fail(name, f"a tensor of shape {shape} (config: {_summary(config)})", None)
        if tuple(saved[name].shape) != shape:
            f.fail(name, f"shape {shape} (config: {_summary(config)})", tuple(saved[name].shape))
        if not saved[name].is_floating_point() or not bool(torch.isfinite(saved[name]).all()):
            f.fail(name, "finite floating-point values", f"{saved[name].dtype} with NaN/inf or integers")
    if unknown := sorted(set(saved) - set(expected)):
        f.fail("tensors", f"only the model's own tensors (config: {_summary(config)})", unknown[:3])


def _summary(config: dict) -> str:
    return ", ".join(f"{k} {config.get(k)}" for k in ("model", "arch", "segments", "width", "hidden"))
