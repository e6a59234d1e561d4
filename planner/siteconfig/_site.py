"""A loaded site config: one value holding everything a manifest may refer to.

Loading reads only `site.yaml` (needed for the defaults and the image catalog) and lists
the directories; presets, specs, postures and host files are read when first looked up,
and secrets.yaml only when a secret is needed. So loading stays cheap however big the
site config grows, and the errors a user sees are about the files their manifest uses.

Layout: `specs/`, `presets/` and `postures/` at the root, or under `v2/` (homestak's
older layout); each kind is looked up on its own, so a half-migrated site config works.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from pveplan import dsl

from .._errors import PlanError
from ._files import Documents, load_struct
from ._hosts import HostConfig, Hosts
from ._images import ImageCatalog, build_catalog
from ._model import Posture, Preset, SiteFile, Spec
from ._secrets import FILE as SECRETS_FILE
from ._secrets import Secrets

SITE_FILE = "site.yaml"
OLD_LAYOUT = "v2"
REHEARSAL_PREFIX = "sim:"
"""How a host rehearsed on the simulator (`--simulate`) is named in plans and workspaces."""


def rehearsal_host(name: str) -> str:
    """The name a rehearsal of host `name` plans under: `sim:father` for `father`.

    A rehearsal is another target: its steps hash differently (the host is in every step's
    hash), so nothing it records in the store (results, applied state, resources) can be
    taken as done on the real host, and its plan files name a host no node file defines.
    """
    return REHEARSAL_PREFIX + name


def rehearsed_host(host: str) -> str | None:
    """The real host a rehearsal name stands for (`father` for `sim:father`), else None."""
    return host[len(REHEARSAL_PREFIX) :] if host.startswith(REHEARSAL_PREFIX) else None


class SiteConfig:
    """The site config at `root`; build it with `load_site_config`.

    Not a Struct: it reads files lazily and holds secrets. What it hands out (presets,
    specs, hosts, images) are frozen Structs, safe to keep and compare.
    """

    def __init__(
        self,
        root: Path,
        site: SiteFile,
        site_map: dsl.SourceMap | None,
        images: ImageCatalog,
    ) -> None:
        self.root = root
        self.site = site
        self.site_map = site_map  # None when there is no site.yaml
        self.images = images
        self._presets: Documents[Preset] = Documents(Preset, _kind_dir(root, "presets"), "preset")
        self._specs: Documents[Spec] = Documents(Spec, _kind_dir(root, "specs"), "spec")
        self._postures: Documents[Posture] = Documents(
            Posture, _kind_dir(root, "postures"), "posture"
        )
        self._hosts = Hosts(root, site.defaults)
        self.secrets = Secrets(root / SECRETS_FILE)

    @property
    def presets(self) -> Mapping[str, Preset]:
        return self._presets

    @property
    def specs(self) -> Mapping[str, Spec]:
        return self._specs

    @property
    def postures(self) -> Mapping[str, Posture]:
        return self._postures

    def documents(self, kind: str) -> Documents[Any]:
        """The lazy directory for "presets", "specs" or "postures" (with source maps)."""
        found: Documents[Any] = {
            "presets": self._presets,
            "specs": self._specs,
            "postures": self._postures,
        }[kind]
        return found

    def host(self, name: str) -> HostConfig:
        """The merged config of target host `name`; `PlanError` with suggestions if unknown."""
        return self.host_entry(name)[0]

    def host_entry(self, name: str) -> tuple[HostConfig, dsl.SourceMap]:
        """Like `host`, with the source map of the host's file.

        A rehearsal name (`sim:father`) is `father`'s own file, simulated: `sim` is true,
        whatever the file says, and the config carries the rehearsal name.
        """
        real = rehearsed_host(name)
        if real is None:
            return self._hosts.entry(name)
        config, smap = self._hosts.entry(real)
        return msgspec.structs.replace(config, name=name, sim=True), smap

    def host_names(self) -> tuple[str, ...]:
        return self._hosts.names()

    def __repr__(self) -> str:
        return f"SiteConfig({str(self.root)!r})"


def load_site_config(root: Path) -> SiteConfig:
    """The site config at `root`: site.yaml checked, the image catalog built.

    A missing site.yaml means homestak's defaults (a directory named with --site-config
    need not have one); a missing `root` is a `PlanError`; a malformed site.yaml is a
    `DslError` or `PlanError` at its positions.
    """
    if not root.is_dir():
        raise PlanError.at(None, f"site config directory {root} does not exist")
    path = root / SITE_FILE
    site_map: dsl.SourceMap | None = None
    if path.is_file():
        site, site_map = load_struct(SiteFile, path, "site.yaml")
    else:
        site = SiteFile()
    return SiteConfig(root, site, site_map, build_catalog(site, site_map))


def _kind_dir(root: Path, kind: str) -> Path | None:
    for folder in (root / kind, root / OLD_LAYOUT / kind):
        if folder.is_dir():
            return folder
    return None
