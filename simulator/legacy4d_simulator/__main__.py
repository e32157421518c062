"""``python -m legacy4d_simulator serve ...``."""

from legacy4d_simulator.cli import main

raise SystemExit(main())
