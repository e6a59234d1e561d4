"""planner.siteconfig: homestak's site config, found, loaded, and applied to a manifest.

Owns discovery (homestak's search order), the site-config files as strict Structs
(site.yaml, presets, specs, postures, nodes/ and hosts/ files), secrets (by reference,
read lazily, never shown), the image catalog (images identified by sha256), and
resolution: a `dsl.LoadedManifest` plus a `SiteConfig` gives a `ResolvedManifest`, the
planner's input, with every foreign key looked up and every missing one reported.

Never: writes files, reads the environment (discovery takes `env` as an argument),
touches the network, or puts a secret value into anything it returns or raises.
"""

from ._discover import discover_site_config
from ._hosts import HostConfig
from ._images import CatalogImage, ImageCatalog
from ._model import (
    HostFile,
    NodeFile,
    Posture,
    Preset,
    SiteDefaults,
    SiteFile,
    SiteImage,
    Spec,
)
from ._resolve import resolve_manifest
from ._resolved import ResolvedManifest, ResolvedNode, ResolvedSpec, ResolvedUser
from ._secrets import SecretRef, Secrets, is_snippet
from ._site import SiteConfig, load_site_config, rehearsal_host, rehearsed_host
from ._snippets import merge_user_data

__all__ = [
    "CatalogImage",
    "HostConfig",
    "HostFile",
    "ImageCatalog",
    "NodeFile",
    "Posture",
    "Preset",
    "ResolvedManifest",
    "ResolvedNode",
    "ResolvedSpec",
    "ResolvedUser",
    "SecretRef",
    "Secrets",
    "SiteConfig",
    "SiteDefaults",
    "SiteFile",
    "SiteImage",
    "Spec",
    "discover_site_config",
    "is_snippet",
    "load_site_config",
    "merge_user_data",
    "rehearsal_host",
    "rehearsed_host",
    "resolve_manifest",
]
