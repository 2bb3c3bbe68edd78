"""Testing helpers: eager mode (run tasks inline, without Redis or workers). The code lives in `wakaq.eager`;
this is the import path WakaQ users expect::

    from wakaq.testing import eager

    with eager(app):
        mytask.delay(1, 1)          # runs now, in this process
"""

from __future__ import annotations

from wakaq.eager import eager, run_eager

__all__ = ["eager", "run_eager"]
