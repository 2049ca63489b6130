"""`python -m syncd`: the same as the `syncd` command."""

import sys

from syncd.cli.main import main

sys.exit(main())
