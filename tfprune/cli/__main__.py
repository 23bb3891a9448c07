"""`python -m tfprune.cli ...`: the `tfprune` command."""

import sys

from tfprune.cli import main

sys.exit(main())
