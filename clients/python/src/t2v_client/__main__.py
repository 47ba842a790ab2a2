"""`python -m t2v_client` is the `t2v` command."""

import sys

from t2v_client.cli import main

sys.exit(main())
