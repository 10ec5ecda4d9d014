"""``python -m learn2adapt.cli ARGS...``: the ``learn2adapt`` command."""

import sys

from learn2adapt.cli.main import main

sys.exit(main())
