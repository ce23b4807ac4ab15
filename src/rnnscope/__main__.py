"""`python -m rnnscope` is the same as the `rnnscope` command."""

import sys

from rnnscope.cli import main
from rnnscope.parallel.exit import exit_worker

status = main()
exit_worker(status)  # a torchrun worker ends here, past torch's teardown (see parallel/exit.py)
sys.exit(status)
