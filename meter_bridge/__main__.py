"""`python -m meter_bridge ...`: see meter_bridge/cli.py."""

import sys

from .cli import main

sys.exit(main())
