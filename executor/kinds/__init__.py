"""The built-in step kinds; importing this package registers them (see `_kinds`)."""

from . import (
    _clone,
    _config,
    _ct,
    _delegate,
    _host_setup,
    _image,
    _node,
    _pull,
    _pve_host,
    _ssh,
    _storage,
    _vm,
)

__all__ = [
    "_clone",
    "_config",
    "_ct",
    "_delegate",
    "_host_setup",
    "_image",
    "_node",
    "_pull",
    "_pve_host",
    "_ssh",
    "_storage",
    "_vm",
]
