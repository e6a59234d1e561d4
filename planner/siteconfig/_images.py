"""The image catalog: images as fixed inputs, identified by sha256, fetched from a URL.

Like a Nix fixed-output derivation, an image is what its hash says it is; the URL is a
hint where to get it and is never hashed, so moving to a mirror changes no step and a new
release changes exactly the steps that use it. Built-in entries (images.yaml beside this
module: homestak's packer release assets) come without a hash, because none has been
verified here: they are "unpinned", which the resolver reports as a warning, not an
error, so homestak manifests keep working while users pin what they use.

site.yaml's `images:` mapping pins a built-in (`sha256`, optionally a new `url`) or adds
an image (both `url` and `sha256` required). Its mistakes are reported all at once, each
at its file:line:col.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from importlib import resources
from typing import Literal
from urllib.parse import urlsplit

from pveplan import dsl

from .._errors import PlanError
from ._model import Frozen, ImageFormat, SiteFile, SiteImage

SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+=_-]*$")
FILENAME = re.compile(r"^[A-Za-z0-9\-.+=_]+\.(qcow2|raw)$")  # what PVE's import storage takes
TEMPLATE_FILENAME = re.compile(r"^[A-Za-z0-9\-.+=_]+\.tar\.(gz|xz|zst|bz2)$")  # vztmpl's
URL_SCHEMES = ("https", "http", "file", "sim")
EXTENSION_FORMATS: dict[str, ImageFormat] = {
    ".qcow2": "qcow2",
    ".raw": "raw",
    ".img": "img",
    ".tar.gz": "vztmpl",
    ".tar.xz": "vztmpl",
    ".tar.zst": "vztmpl",
    ".tar.bz2": "vztmpl",
}
BUILTIN_FILE = "images.yaml"


class CatalogImage(Frozen, kw_only=True):
    """One image: `sha256` is its identity (None: unpinned), `url` only where to fetch it.

    `filename` is the name it gets on a PVE import storage. A pinned image's filename
    carries the start of its hash, so a new release is a new file next to the old one,
    never an overwrite; `img` (a raw disk image named .img) is stored as `.raw`.
    """

    name: str
    url: str
    sha256: str | None = None
    format: ImageFormat
    filename: str
    source: Literal["builtin", "site.yaml"]

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None


class ImageCatalog:
    """Every image a manifest may name: the built-ins, extended and overridden by site.yaml."""

    def __init__(self, images: dict[str, CatalogImage]) -> None:
        self._images = dict(sorted(images.items()))

    def get(self, name: str) -> CatalogImage:
        """The image called `name`; `PlanError` naming the closest one if unknown."""
        found = self._images.get(name)
        if found is None:
            raise PlanError.at(None, f"unknown image {name!r}", self.suggest(name))
        return found

    def names(self) -> tuple[str, ...]:
        return tuple(self._images)

    def suggest(self, name: str) -> str:
        """The "did you mean" detail for an unknown image name."""
        return (
            dsl.did_you_mean(name, self._images, "images")
            + "; add new images under images: in site.yaml"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._images

    def __iter__(self) -> Iterator[CatalogImage]:
        return iter(self._images.values())

    def __len__(self) -> int:
        return len(self._images)

    def __repr__(self) -> str:
        return f"ImageCatalog({', '.join(self._images)})"


def pin_hint(name: str) -> str:
    """How to pin `name` in site.yaml (the detail of the unpinned-image warning)."""
    return (
        f"pin it in site.yaml with the sha256 of the file (sha256sum {name}.qcow2):\n"
        f"  images:\n    {name}:\n      sha256: <64 hex digits>"
    )


def build_catalog(site: SiteFile, smap: dsl.SourceMap | None = None) -> ImageCatalog:
    """The built-ins with site.yaml's `images` applied; `PlanError` listing every mistake.

    `smap` is site.yaml's source map (None when there is no site.yaml), for positions.
    """
    release = site.defaults.image_release or "latest"
    images: dict[str, CatalogImage] = {}
    for name, entry in _builtin_entries().items():
        release_path = (
            "releases/latest/download" if release == "latest" else f"releases/download/{release}"
        )
        url = (entry.url or "").replace("{release_path}", release_path)
        images[name] = _image(
            name, url, entry.sha256, entry.format or _format_of(url) or "qcow2", "builtin"
        )
    problems: list[dsl.Diagnostic] = []
    builtins = tuple(images)
    for name, entry in site.images.items():
        checked = _check_entry(name, entry, images.get(name), builtins, smap, problems)
        if checked is not None:
            images[name] = checked
    if problems:
        raise PlanError(problems)
    return ImageCatalog(images)


@functools.cache
def _builtin_entries() -> dict[str, SiteImage]:
    text = resources.files(__package__).joinpath(BUILTIN_FILE).read_text(encoding="utf-8")
    data, smap = dsl.load_yaml(text, BUILTIN_FILE)
    return dsl.convert_checked(dict[str, SiteImage], data, smap, what="built-in image catalog")


def _check_entry(
    name: str,
    entry: SiteImage,
    builtin: CatalogImage | None,
    builtins: tuple[str, ...],
    smap: dsl.SourceMap | None,
    problems: list[dsl.Diagnostic],
) -> CatalogImage | None:
    """One site.yaml entry as a catalog image, or None after recording its problems."""
    before = len(problems)

    def report(field: str | None, summary: str, detail: str) -> None:
        path: tuple[str, ...] = ("images", name) if field is None else ("images", name, field)
        location = smap.locate(path, key=field is None) if smap is not None else None
        problems.append(dsl.Diagnostic(summary=summary, detail=detail, location=location))

    if not NAME.match(name):
        report(
            None,
            f"image name {name!r} is not valid",
            "use letters, digits and . + = _ -, starting with a letter or digit",
        )
    if builtin is None and entry.url is None:
        report(
            None,
            f"image {name!r} is not built in, so it needs a url and a sha256",
            dsl.did_you_mean(name, builtins, "built-in images"),
        )
    elif builtin is None and entry.sha256 is None:
        report(
            None,
            f"image {name!r} needs a sha256",
            "a site image is identified by its content: "
            "add sha256: <64 hex digits> (sha256sum FILE)",
        )
    if entry.sha256 is not None and not SHA256.match(entry.sha256):
        report(
            "sha256",
            f"image {name!r}: sha256 is not 64 lowercase hex digits",
            _sha_hint(entry.sha256),
        )
    url = entry.url if entry.url is not None else (builtin.url if builtin else "")
    fmt = entry.format or (builtin.format if builtin and entry.url is None else None)
    if entry.url is not None:
        url_problem = _url_problem(entry.url)
        if url_problem:
            report(
                "url",
                f"image {name!r}: {url_problem}",
                f"use a URL starting with {', '.join(s + '://' for s in URL_SCHEMES)}",
            )
        elif fmt is None:
            fmt = _format_of(entry.url)
            if fmt is None:
                report(
                    "url",
                    f"image {name!r}: cannot tell the format from the URL",
                    "add format: qcow2 (or raw, img; vztmpl for a container template)",
                )
    if len(problems) > before or fmt is None:
        return None
    return _image(name, url, entry.sha256, fmt, "site.yaml")


def _image(
    name: str,
    url: str,
    sha256: str | None,
    fmt: ImageFormat,
    source: Literal["builtin", "site.yaml"],
) -> CatalogImage:
    if fmt == "vztmpl":  # a container template keeps its archive's compression
        path = urlsplit(url).path.lower()
        ext = next(
            (e[1:] for e, f in EXTENSION_FORMATS.items() if f == fmt and path.endswith(e)),
            "tar.zst",
        )
    else:
        ext = "qcow2" if fmt == "qcow2" else "raw"
    filename = f"{name}-{sha256[:16]}.{ext}" if sha256 else f"{name}.{ext}"
    rule = TEMPLATE_FILENAME if fmt == "vztmpl" else FILENAME
    assert rule.match(filename), filename  # NAME and SHA256 guarantee it
    return CatalogImage(
        name=name, url=url, sha256=sha256, format=fmt, filename=filename, source=source
    )


def _format_of(url: str) -> ImageFormat | None:
    path = urlsplit(url).path.lower()
    for ext, fmt in EXTENSION_FORMATS.items():
        if path.endswith(ext):
            return fmt
    return None


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES:
        return (
            f"url {url!r} has no supported scheme"
            if not parts.scheme
            else f"url scheme {parts.scheme!r} is not supported"
        )
    if not (parts.netloc or parts.path.strip("/")):
        return f"url {url!r} names no file"
    if any(c.isspace() for c in url):
        return f"url {url!r} contains whitespace"
    return None


def _sha_hint(value: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return f"write it in lowercase: {value.lower()}"
    return (
        "a sha256 is 64 hex digits (0-9, a-f), as printed by sha256sum FILE; "
        f"this has {len(value)} characters"
    )
