"""``python -m operando.simulate DIRECTORY [--seed N]``: write the simulated sample spectra."""

from . import main

raise SystemExit(main())
