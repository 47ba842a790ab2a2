"""`python -m t2v` is the `t2v` command."""

import sys

from t2v.cli import main

sys.exit(main())
