"""`python -m videometrics PATH ...`: see videometrics.cli."""

import sys

from .cli import main

sys.exit(main())
