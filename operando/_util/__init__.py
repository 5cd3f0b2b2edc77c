"""Small helpers every stage shares, one copy each.

=====================  ==========================================================
:mod:`.files`          atomic file writes (temporary file, fsync, permissions, rename)
:mod:`.jsonsafe`       values made JSON-safe (numpy types, paths, non-finite floats)
:mod:`.validate`       the validation vocabulary: choices, keys, "did you mean", short lists
:mod:`.larch_compat`   the xraylarch constants and helpers the fast engine needs
:mod:`.stats`          the chi-square quantile of the fit statistics
:mod:`.elements`       element symbols and tabulated edge energies
:mod:`.blas`           one BLAS thread for the batched engines
=====================  ==========================================================

Nothing here imports a stage of the package.
"""
