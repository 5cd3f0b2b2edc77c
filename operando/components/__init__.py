"""XANES component analysis: linear-combination fits (LCF), PCA and MCR-ALS of a series."""

from ._references import resolve as resolve_standards
from .combinatorial import CombinationResult, lcf_combinations
from .lcf import LCFResult, lcf, lcf_arrays
from .mcr import MCRResult, mcr
from .pca import PCAResult, pca, pca_matrix

__all__ = ["CombinationResult", "LCFResult", "MCRResult", "PCAResult", "lcf", "lcf_arrays",
           "lcf_combinations", "mcr", "pca", "pca_matrix", "resolve_standards"]
