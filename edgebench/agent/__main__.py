"""`python -m edgebench.agent PLAN.json OUTDIR`: how every device starts a run."""

import sys

from .main import main

sys.exit(main())
