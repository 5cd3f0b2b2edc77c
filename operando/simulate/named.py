"""The two named series: Pt L3 under CO oxidation, Cu K of a Cu-N-C catalyst under potential."""

from __future__ import annotations

import numpy as np

from .spec import EdgeModel, Segment, SeriesSpec, Shell


def pt_co_oxidation() -> SeriesSpec:
    """0.3 wt% Pt/gamma-Al2O3 at the Pt L3 edge during CO oxidation.

    O2 calcination (isolated Pt-O4) -> CO+O2 (Pt-O 2, Pt-Pt 4 clusters) ->
    H2 reduction (Pt-Pt 6.5: larger clusters of ~1 nm, Pt-O 0.5) -> CO+O2 again (partial
    redispersion: Pt-Pt 2.5, Pt-O 2.5); 4 scans per condition.
    """
    def pt(cn_o, r_o, s2_o, cn_pt, r_pt, s2_pt, de0=1.0):
        return (Shell("Pt-O", cn_o, r_o if cn_o else np.nan, s2_o if cn_o else np.nan,
                      de0 if cn_o else np.nan),
                Shell("Pt-Pt", cn_pt, r_pt if cn_pt else np.nan, s2_pt if cn_pt else np.nan,
                      de0 if cn_pt else np.nan))

    segments = (
        Segment({"gas": "O2", "temperature_K": 673.0}, pt(4.0, 2.010, 0.0035, 0.0, 0, 0),
                repeats=4, state="isolated"),
        Segment({"gas": "CO+O2", "temperature_K": 473.0}, pt(2.0, 2.015, 0.0036, 4.0, 2.745, 0.0062),
                repeats=4, state="cluster"),
        Segment({"gas": "H2", "temperature_K": 573.0}, pt(0.5, 2.020, 0.0040, 6.5, 2.758, 0.0068),
                repeats=4, state="cluster"),
        Segment({"gas": "CO+O2", "temperature_K": 473.0}, pt(2.5, 2.012, 0.0036, 2.5, 2.740, 0.0064),
                repeats=4, state="cluster"),
    )
    return SeriesSpec(
        name="pt_co_oxidation", element="Pt", edge="L3", segments=segments,
        condition_columns=("gas", "temperature_K"), shell_labels=("Pt-O", "Pt-Pt"),
        ligand_shells=("Pt-O",), s02=0.85,
        edge_model=EdgeModel(core_width=5.3, wl_position=3.0, wl_fwhm=5.0, wl_eta=0.6,
                             wl_base=0.55, wl_per_ligand=0.20, edge_shift_oxidised=1.0,
                             ligand_cn_max=4.0, victoreen_power=2.5),
        foil=Shell("Pt-Pt", 12.0, 2.775, 0.0049, 0.5),
        edge_step=0.08, pre_offset=1.6, pre_slope=-4.2e-4, noise=5e-4,
        reference_edge_step=1.2, reference_pre_offset=0.35, reference_pre_slope=-9e-5,
        reference_noise=3e-4, drift_mean=0.3, drift_sd=0.2, drift_corr=0.8, drift_seed=1101,
        scan_time_s=300.0, settle_time_s=1800.0,
        file_pattern="pt_co_oxidation_{step:03d}.xdi", foil_file="pt_foil.xdi",
        description="0.3 wt% Pt/gamma-Al2O3, Pt L3, CO oxidation cycle (simulated)",
    )


def cu_nc_potential() -> SeriesSpec:
    """Cu-N-C single-atom catalyst at the Cu K edge under potential control.

    0.82, 0.50, 0.10 V vs RHE (isolated Cu-N4 -> Cu-N3 -> Cu-N2), then
    -0.2 ... -1.0 V (Cu-Cu grows 1.5 -> 7 while Cu-N falls 1.6 -> 0.5), then
    open circuit ("OCP": Cu-N 4 again); 3 scans per condition.
    """
    def cu(cn_n, cn_cu, r_cu=2.545, s2_cu=0.0088, r_n=1.950, s2_n=0.0045, de0=0.5):
        return (Shell("Cu-N", cn_n, r_n if cn_n else np.nan, s2_n if cn_n else np.nan,
                      de0 if cn_n else np.nan),
                Shell("Cu-Cu", cn_cu, r_cu if cn_cu else np.nan, s2_cu if cn_cu else np.nan,
                      de0 if cn_cu else np.nan))

    table = [  # potential, Cu-N, Cu-Cu, R(Cu-Cu), sigma2(Cu-Cu), R(Cu-N), state
        (0.82, 4.0, 0.0, 0, 0, 1.950, "isolated"),
        (0.50, 3.0, 0.0, 0, 0, 1.952, "isolated"),
        (0.10, 2.0, 0.0, 0, 0, 1.955, "isolated"),
        (-0.2, 1.6, 1.5, 2.530, 0.0095, 1.958, "cluster"),
        (-0.4, 1.2, 3.0, 2.535, 0.0092, 1.960, "cluster"),
        (-0.6, 0.9, 4.5, 2.540, 0.0090, 1.960, "cluster"),
        (-0.8, 0.6, 6.0, 2.545, 0.0088, 1.960, "cluster"),
        (-1.0, 0.5, 7.0, 2.550, 0.0087, 1.960, "cluster"),
        ("OCP", 4.0, 0.0, 0, 0, 1.950, "isolated"),
    ]
    segments = tuple(
        Segment({"potential_V": pot}, cu(n, c, r_cu=rc, s2_cu=s2c, r_n=rn), repeats=3, state=state)
        for pot, n, c, rc, s2c, rn, state in table
    )
    return SeriesSpec(
        name="cu_nc_potential", element="Cu", edge="K", segments=segments,
        condition_columns=("potential_V",), shell_labels=("Cu-N", "Cu-Cu"),
        ligand_shells=("Cu-N",), s02=0.90,
        edge_model=EdgeModel(core_width=2.5, wl_position=6.0, wl_fwhm=8.0, wl_eta=0.5,
                             wl_base=0.05, wl_per_ligand=0.09, edge_shift_oxidised=1.5,
                             ligand_cn_max=4.0, victoreen_power=2.5),
        foil=Shell("Cu-Cu", 12.0, 2.556, 0.0087, 0.5),
        edge_step=0.12, pre_offset=0.8, pre_slope=-2.7e-4, noise=8e-4,
        reference_edge_step=1.5, reference_pre_offset=0.3, reference_pre_slope=-1e-4,
        reference_noise=3e-4, drift_mean=-0.25, drift_sd=0.2, drift_corr=0.8, drift_seed=2202,
        scan_time_s=240.0, settle_time_s=600.0,
        file_pattern="cu_nc_potential.dat#mu_{step:03d}", foil_file="cu_foil.xdi",
        description="Cu-N-C single-atom catalyst, Cu K, potential steps vs RHE (simulated)",
    )


#: The named Pt L3 CO-oxidation series (16 scans).
PT_CO_OXIDATION = pt_co_oxidation()
#: The named Cu K potential series (27 scans).
CU_NC_POTENTIAL = cu_nc_potential()
