"""``python -m streamkit``: the same as the ``streamkit`` command."""

import sys

from streamkit._cli import main

sys.exit(main())
