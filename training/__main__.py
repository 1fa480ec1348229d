"""``python -m ghostwrite.training ARGS`` is ``ghostwrite train ARGS``."""

import sys

from .cli import main

sys.exit(main())
