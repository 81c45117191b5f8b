"""``python -m services.cli`` is the ``ferry`` command."""

import sys

from services.cli.main import main

sys.exit(main())
