"""The JSON bodies of the API (pydantic models: they are what /openapi.json documents)."""

from __future__ import annotations

from pydantic import BaseModel, Field

MAX_SEED = (
    2**63 - 1
)  # seeds are 0..2**63-1 (torch.Generator.manual_seed takes up to 2**64-1; sample i adds i)


class Colour(BaseModel):
    ab: list[float] = Field(description="CIE a, b of the bin centre")
    probability: float = Field(description="p̄_k(q): its probability for a random pixel of the segment")
    rgb: list[int] = Field(description="sRGB of that ab at the segment's mean lightness")


class SegmentInfo(BaseModel):
    segment: int
    area: float = Field(description="share of the pixels (work grid) whose most probable segment it is")
    lightness: float = Field(description="mean CIE L of its pixels")
    colours: list[Colour] = Field(description="its most probable colours under P(y | z = k, x), best first")


class Images(BaseModel):
    grey: str
    colorized: str
    overlay: str = Field(description="the prior segments blended over the grey photo, boundaries in white")
    segments: str = Field(description="segment id × segment_levels as a grey PNG, for hit-testing")
    current: str = Field(description="the colorization (or a sample) with the recolourings")
    samples: list[str]


class ColorizeResponse(BaseModel):
    handle: str
    name: str = Field(description="the upload's file stem, made safe (downloads are named after it)")
    width: int
    height: int
    expires_in: float = Field(description="seconds after its last use that the handle is forgotten")
    version: int = Field(description="bumped at every change of the current image")
    segment_levels: int
    segments: list[SegmentInfo]
    recoloured: list[int]
    images: Images = Field(description="URLs under this app, or data: URLs with encode=base64")


class RecolourRequest(BaseModel):
    segment: int = Field(description="the segment id, 0..K-1")
    ab: list[float] | None = Field(None, min_length=2, max_length=2, description="CIE [a, b] in the gamut")
    rgb: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$", description="or an sRGB colour '#rrggbb'")
    width: float = Field(10.0, gt=0, le=200, description="the tilt's width in ab units (10: one bin)")
    at: list[int] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[x, y], a pixel of the segment: recolour only the connected region of the segment that "
        "holds it (8-neighbours), not its other parts; default: the whole segment",
    )


class SampleRequest(BaseModel):
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="the draw's seed, 0..2**63-1 (default: a random one)"
    )


class ImageUpdate(BaseModel):
    handle: str
    version: int
    recoloured: list[int]
    image: str = Field(description="the new current image (URL or data: URL)")
    changed_pixels: int | None = None
    ab: list[float] | None = None
    seed: int | None = None


class Example(BaseModel):
    id: str
    url: str
    source: str
    licence: str
