"""`python -m wakaq worker|scheduler|info|purge|failed|web --app package.module.attribute`."""

import sys

from wakaq.cli import main

sys.exit(main())
