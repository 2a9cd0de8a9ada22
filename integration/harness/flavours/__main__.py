"""python -m integration.harness.flavours build FLAVOUR | list"""

import sys

from . import main

sys.exit(main())
