"""`python -m rnnscope` is the same as the `rnnscope` command."""

import sys

from rnnscope.cli import main

sys.exit(main())
