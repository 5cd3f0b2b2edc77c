"""The fast engine's series-global fit: :func:`fit_joint` with
:func:`operando.exafs.batch.batch_fit_global` (one joint Levenberg-Marquardt, the
shared block solved through its Schur complement).

Start: one batched per-step pass from the default start; the per-step values
start the per-step parameters and their median over the converged steps the
shared ones, so the joint fit starts near its optimum (the larch engine's joint fit
starts from the defaults and reaches the same optimum, tests/exafs/test_exafs_global.py).
"""

from __future__ import annotations

import numpy as np

from ..batch import batch_fit_global
from ..plan import COLUMN_KIND, allow_negative_cn, build_plan, param_names
from ..policy import judge
from .fast_passes import FIT_TOL, BatchedPasses, batch_arguments, bound_names
from .larch import empty_row


def fit_joint(k, chis, steps, model, paths, s02, shared, e0=None) -> list[dict]:
    """Rows (the larch engine's row dicts) of a joint fit of ``chis`` sharing the
    parameter kinds ``shared`` (of ``"cn", "r", "sigma2", "de0"``)."""
    n = len(steps)
    eng = BatchedPasses(k, chis, model, paths, s02, {}, e0)
    rows = np.arange(n)
    first = eng.fit(rows, eng.default_start(n))
    start = eng.start_from(first, rows, ())
    good = np.isfinite(first["chi_square"]) & (first.bad == "")
    use = good if good.any() else np.isfinite(first["chi_square"])
    plan_kind = {"cn": "cn", "r": "dr", "sigma2": "sigma2", "de0": "de0"}
    for lab in eng.labels:
        for kind in shared:
            key = plan_kind[kind]
            v = start[lab][key]
            if use.any():
                start[lab][key] = np.full(n, np.median(v[use]))
    plan = allow_negative_cn(build_plan(model, start, e0=e0), model)
    args = batch_arguments(plan, eng.labels)
    shared_names = []
    for name in _varied_names(args, eng.labels):
        kind = "de0" if name.startswith("de0") else name.split("_", 1)[0]
        if COLUMN_KIND[kind] in shared:
            shared_names.append(name)
    res = batch_fit_global(k, chis, eng.tables, shared=shared_names, **model.fit_window(),
                           s02=s02, ftol=FIT_TOL, xtol=FIT_TOL, **args)
    on_bound = bound_names(res, args["bounds"], plan, param_names(model, plan))
    out = []
    nan = float("nan")
    ties = set(args["ties"])
    for j, step in enumerate(steps):
        row = empty_row(k, model, s02)
        row["step"] = int(step)
        if not res.success[j] and not np.isfinite(res.chi_square[j]):
            row["fit_message"] = f"not fitted: {res.message[j]}"
            out.append(row)
            continue
        for lab in eng.labels:
            e0name = "de0" if args["share_e0"] else f"de0_{lab}"
            for kind, src, off in (("cn", f"cn_{lab}", 0.0), ("r", f"deltar_{lab}", eng.reff[lab]),
                                   ("sigma2", f"sigma2_{lab}", 0.0), ("de0", e0name, 0.0)):
                row[f"{kind}_{lab}"] = float(res.value[src][j]) + off
                varied = src in res.var_names or src in ties
                row[f"{kind}_{lab}_err"] = float(res.stderr[src][j]) if varied else nan
        row.update(r_factor=float(res.r_factor[j]), redchi=float(res.redchi[j]),
                   chi_square=float(res.chi_square[j]), n_idp=float(res.n_idp),
                   n_varys=int(res.n_varys))
        model_chi = np.interp(k, res.model_k, res.model_chi[j], right=np.nan)
        row["_model_chi"] = model_chi
        errs = [res.stderr[nm][j] for nm in res.var_names]
        reason = judge(row, bool(res.success[j]), str(res.message[j]), on_bound[j],
                       all(np.isfinite(e) and e > 0 for e in errs))
        row["fit_message"] = "; ".join(x for x in (
            f"global fit of {n} steps sharing {sorted(shared)}; step R-factor "
            f"{res.row_r_factor[j]:.4g}", reason) if x)
        row["_params"] = {}
        out.append(row)
    return out


def _varied_names(args, labels):
    names = []
    for lab in labels:
        for kind in ("cn", "deltar", "sigma2", "de0"):
            if args["vary"][lab].get(kind):
                names.append(f"{kind}_{lab}")
    if args["share_e0"] and args["vary"].get("de0"):
        names.append("de0")
    return names

