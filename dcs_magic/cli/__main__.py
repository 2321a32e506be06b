"""`python -m dcs_magic.cli`: the `dcs` command."""

import sys

from .commands import main

sys.exit(main())
