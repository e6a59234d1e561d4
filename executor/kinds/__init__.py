"""The built-in step kinds; importing this package registers them (see `_kinds`)."""

from . import _config, _image, _later, _ssh, _vm

__all__ = ["_config", "_image", "_later", "_ssh", "_vm"]
