"""`pveplan schema manifest`: the JSON Schema of YAML manifests, for editors."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Console


def run_schema(args: argparse.Namespace, console: Console) -> int:
    from pveplan.dsl import manifest_json_schema

    console.print(json.dumps(manifest_json_schema(), indent=2, sort_keys=True))
    return 0
