"""``python -m operando.simulate DIRECTORY [--seed N]``: write the simulated sample spectra."""

from .samples import main

raise SystemExit(main())
