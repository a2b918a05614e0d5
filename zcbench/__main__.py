"""``python -m zcbench`` is the ``zcbench`` command."""

from zcbench.cli import main

raise SystemExit(main())
