"""Test-wide settings.

Hypothesis explores new random inputs on every local run (that is how it finds bugs);
under CI (`CI` set) it runs derandomized, so a submission's CI result does not depend
on the luck of the draw. Anything a local run finds becomes a regression test.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
