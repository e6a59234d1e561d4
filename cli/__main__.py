"""`python -m pveplan.cli`: the same as the `pveplan` command."""

import sys

from . import main

sys.exit(main())
