"""``python -m shared.mover`` is ``ferry-mover``."""

import sys

from shared.mover.cli import main

sys.exit(main())
