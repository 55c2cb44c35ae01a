"""``python -m quantlab ...``: the ``quantlab`` command line (:mod:`quantlab.cli`)."""
import sys

from quantlab.cli import main

sys.exit(main())
