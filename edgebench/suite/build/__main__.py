"""Entry point so that ``python -m edgebench.suite.build`` runs the whole build."""

import sys

from edgebench.suite.build.cli import main

if __name__ == "__main__":
    sys.exit(main())
