"""Choose new service sites that cover the most households nobody serves yet (MCLP).

The maximal covering location problem: given households not yet inside any service circle,
candidate sites and a radius, choose ``k`` sites so that the most households (or people) fall
within the radius of a chosen site. Existing service points stay as they are; they enter only
through the ``covered`` mask, because households they already cover gain nothing.

Two solvers:

* ``exact`` - an integer programme solved by HiGHS through ``scipy.optimize.milp``. Households
  reached by the same set of candidates are merged first, which makes the programme small.
  The answer is proven optimal (``optimal=True``) unless the time limit stops the solver.
* ``greedy`` - repeatedly take the site that newly covers the most. Coverage is monotone and
  submodular, so greedy reaches at least ``1 - (1 - 1/k)^k`` (more than ``1 - 1/e`` ~ 63.2 %)
  of the optimum (Nemhauser, Wolsey and Fisher, 1978). The run also yields a data-dependent
  upper bound on the optimum, reported so that the actual gap is known.

``method="auto"`` solves exactly when the merged programme is small and falls back to greedy.
Distances are WGS84 geodesics (see ``gis.coverage``).
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from gis.coverage import (
    DEFAULT_RADIUS_M,
    CoverageInputError,
    _as_lonlat,
    _as_radii,
    ecef,
    pairs_within,
)

LOGGER = logging.getLogger(__name__)

EXACT_MAX_CANDIDATES = 600
"""``auto`` tries the exact solver up to this many useful candidates ..."""
EXACT_MAX_GROUPS = 50_000
"""... and this many distinct household groups (households reached by the same candidates)."""


def greedy_guarantee(k: int) -> float:
    """Return the share of the optimum greedy is proven to reach when choosing ``k`` sites."""
    if k <= 0:
        return 1.0
    return 1.0 - (1.0 - 1.0 / k) ** k


@dataclass(frozen=True)
class RecommendedSite:
    """One proposed site and what it adds."""

    candidate: int
    """Index of the site in the candidate arrays."""
    lon: float
    lat: float
    gain: float
    """Weight (households or people) newly covered by this site after the sites listed before it;
    the gains of all sites add up to the total."""
    alone: float
    """Weight this site would newly cover if it were the only new one."""
    households: np.ndarray = field(repr=False)
    """Indices of the households counted in ``gain``."""


@dataclass(frozen=True)
class Recommendation:
    """The chosen sites, what they add together, and how sure we are it is the best."""

    sites: list[RecommendedSite]
    total_gain: float
    method: Literal["exact", "greedy"]
    optimal: bool
    upper_bound: float
    """No choice of ``k`` candidates can newly cover more than this."""
    guarantee: float
    """Proven lower bound of ``total_gain / optimum`` (1.0 when solved exactly)."""
    k: int
    candidates: int
    reachable: float
    """Weight of the uncovered households that some candidate reaches at all."""

    def describe(self) -> str:
        """Return one line saying how good the answer is proven to be."""
        if self.optimal:
            how = "integer programme" if self.method == "exact" else "greedy, matched its bound"
            return f"optimal, proven ({how})"
        ratio = self.total_gain / self.upper_bound if self.upper_bound > 0 else 1.0
        return (
            f"greedy: at least {self.guarantee:.1%} of the optimum in general "
            f"(1 - (1 - 1/k)^k, k={self.k}); here at least {ratio:.1%} "
            f"(no choice covers more than {self.upper_bound:g})"
        )


def recommend_sites(
    hh_lon: Any,
    hh_lat: Any,
    covered: Any,
    cand_lon: Any,
    cand_lat: Any,
    k: int,
    *,
    radius_m: Any = DEFAULT_RADIUS_M,
    weights: Any = None,
    method: Literal["auto", "exact", "greedy"] = "auto",
    time_limit_s: float = 20.0,
) -> Recommendation:
    """Choose up to ``k`` candidate sites that newly cover the most uncovered weight.

    ``covered`` marks households already inside an existing circle; ``weights`` counts each
    household (1 each by default; pass people counts to cover the most people). ``radius_m`` is
    the radius a new site would serve, one value or one per candidate. Sites that would add
    nothing are not proposed, so fewer than ``k`` may come back.
    """
    hh_lon_a, hh_lat_a = _as_lonlat(hh_lon, hh_lat, "households")
    c_lon, c_lat = _as_lonlat(cand_lon, cand_lat, "candidates")
    radius = _as_radii(radius_m, c_lon.size, "candidates")
    n = hh_lon_a.size
    cov = np.zeros(n, dtype=bool) if covered is None else np.asarray(covered, dtype=bool)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if cov.size != n or w.size != n:
        raise CoverageInputError("recommend: covered/weights do not match the households")
    if k < 0 or int(k) != k:
        raise CoverageInputError(f"recommend: k must be a whole number >= 0, got {k!r}")
    if method not in ("auto", "exact", "greedy"):
        raise CoverageInputError(f"recommend: unknown method {method!r}")
    k = int(k)

    open_idx = np.flatnonzero(~cov & (w > 0))
    hh_i, cand_j, _ = pairs_within(hh_lon_a[open_idx], hh_lat_a[open_idx], c_lon, c_lat, radius)
    hh_i = open_idx[hh_i]
    # Candidates x households; only uncovered households reachable by a candidate matter.
    reach_hh, col = np.unique(hh_i, return_inverse=True)
    a = sparse.csr_array(
        (np.ones(hh_i.size, dtype=np.int8), (cand_j, col)), shape=(c_lon.size, reach_hh.size)
    )
    a.sum_duplicates()
    w_reach = w[reach_hh]
    reachable = float(w_reach.sum())
    alone = a @ w_reach

    chosen, upper = _greedy(a, w_reach, k)
    best_total = _union_weight(a, w_reach, chosen)
    solver: Literal["exact", "greedy"] = "greedy"
    proven = False
    useful = int(np.count_nonzero(alone > 0))
    if k > 0 and useful > k and method != "greedy":
        groups = _group_households(a, w_reach)
        small = useful <= EXACT_MAX_CANDIDATES and groups[1].size <= EXACT_MAX_GROUPS
        if method == "exact" or small:
            exact = _solve_milp(groups, a.shape[0], k, time_limit_s)
            if exact is not None:
                x_chosen, proven, bound = exact
                x_total = _union_weight(a, w_reach, x_chosen)
                upper = min(upper, bound)
                if x_total >= best_total:
                    chosen, best_total, solver = x_chosen, x_total, "exact"
    tol = 1e-9 * max(1.0, upper)
    # With no more useful candidates than k, taking all of them is optimal; greedy does that.
    optimal = proven or useful <= k or best_total >= upper - tol

    sites = _ordered_sites(a, w_reach, reach_hh, chosen, alone, c_lon, c_lat)
    total = float(sum(s.gain for s in sites))
    guarantee = 1.0 if optimal else greedy_guarantee(k)
    LOGGER.debug(
        "recommend: k=%d candidates=%d reachable=%g total=%g method=%s optimal=%s",
        k,
        c_lon.size,
        reachable,
        total,
        solver,
        optimal,
    )
    return Recommendation(
        sites=sites,
        total_gain=total,
        method=solver,
        optimal=optimal,
        upper_bound=max(upper, total),
        guarantee=guarantee,
        k=k,
        candidates=int(c_lon.size),
        reachable=reachable,
    )


def _union_weight(a: sparse.csr_array, w: np.ndarray, chosen: list[int]) -> float:
    if not chosen:
        return 0.0
    hit = np.zeros(w.size, dtype=bool)
    for j in chosen:
        hit[a.indices[a.indptr[j] : a.indptr[j + 1]]] = True
    return float(w[hit].sum())


def _greedy(a: sparse.csr_array, w: np.ndarray, k: int) -> tuple[list[int], float]:
    """Return greedy choice and an upper bound on the optimum.

    Lazy evaluation: a candidate's gain only shrinks as others are chosen, so a stale gain on the
    heap is an upper bound and the top needs recomputing only when it is stale.
    The bound: for any step t, OPT <= covered_t + (sum of the k largest current gains).
    """
    covered = np.zeros(w.size, dtype=bool)
    indptr, indices = a.indptr, a.indices
    gains = a @ w
    heap = [(-float(g), int(j)) for j, g in enumerate(gains) if g > 0]
    heapq.heapify(heap)
    total = 0.0
    upper = float(np.sort(gains)[::-1][:k].sum()) if k else 0.0
    chosen: list[int] = []
    while heap and len(chosen) < k:
        _, j = heapq.heappop(heap)
        cols = indices[indptr[j] : indptr[j + 1]]
        fresh = float(w[cols][~covered[cols]].sum())
        if fresh <= 0:
            continue
        if heap and fresh < -heap[0][0]:
            heapq.heappush(heap, (-fresh, j))
            continue
        chosen.append(j)
        covered[cols] = True
        total += fresh
        # Stale heap gains still bound the true ones from above, so the k largest of them
        # bound what any k more sites could add.
        upper = min(upper, total + sum(-g for g, _ in heapq.nsmallest(k, heap)))
    if not heap:
        # No candidate has anything left to add.
        upper = min(upper, total)
    return chosen, max(upper, total)


def _group_households(a: sparse.csr_array, w: np.ndarray) -> tuple[sparse.csr_array, np.ndarray]:
    """Merge households reached by exactly the same candidates; return (groups x cand, weight)."""
    at = a.T.tocsr()
    at.sort_indices()
    keys: dict[bytes, int] = {}
    group_of = np.empty(at.shape[0], dtype=np.int64)
    for h in range(at.shape[0]):
        key = at.indices[at.indptr[h] : at.indptr[h + 1]].tobytes()
        group_of[h] = keys.setdefault(key, len(keys))
    g = len(keys)
    gw = np.bincount(group_of, weights=w, minlength=g)
    first = np.full(g, -1, dtype=np.int64)
    first[group_of[::-1]] = np.arange(at.shape[0])[::-1]
    return at[first], gw


def _solve_milp(
    groups: tuple[sparse.csr_array, np.ndarray],
    n_cand: int,
    k: int,
    time_limit_s: float,
) -> tuple[list[int], bool, float] | None:
    """Solve max sum(w_g y_g) s.t. y_g <= sum_{j reaches g} x_j, sum x <= k; x binary."""
    gm, gw = groups
    n_g = gm.shape[0]
    # Variables: x_0..x_{C-1}, then y_0..y_{G-1}. y may stay continuous: at an optimum with
    # integral x each y_g equals min(1, sum x), which is integral.
    c = np.concatenate([np.zeros(n_cand), -gw])
    link = sparse.hstack([-gm.astype(np.float64), sparse.eye_array(n_g, format="csr")]).tocsr()
    budget = sparse.csr_array(np.concatenate([np.ones(n_cand), np.zeros(n_g)]).reshape(1, -1))
    cons = [
        LinearConstraint(link, -np.inf, 0.0),
        LinearConstraint(budget, -np.inf, float(k)),
    ]
    integrality = np.concatenate([np.ones(n_cand), np.zeros(n_g)])
    res = milp(
        c,
        constraints=cons,
        integrality=integrality,
        bounds=Bounds(0.0, 1.0),
        options={"time_limit": float(time_limit_s), "disp": False},
    )
    if res.x is None:
        LOGGER.info("recommend: exact solver found no solution (%s)", res.message)
        return None
    x = res.x[:n_cand]
    chosen = [int(j) for j in np.flatnonzero(x > 0.5)]
    proven = res.status == 0
    bound = -float(res.mip_dual_bound) if res.mip_dual_bound is not None else math.inf
    if proven:
        bound = min(bound, -float(res.fun))
    return chosen, proven, bound


def _ordered_sites(
    a: sparse.csr_array,
    w: np.ndarray,
    reach_hh: np.ndarray,
    chosen: list[int],
    alone: np.ndarray,
    c_lon: np.ndarray,
    c_lat: np.ndarray,
) -> list[RecommendedSite]:
    """Order the chosen sites by what each adds to those before it (largest first)."""
    covered = np.zeros(w.size, dtype=bool)
    left = list(chosen)
    out: list[RecommendedSite] = []
    while left:
        best, best_gain, best_cols = -1, -1.0, np.zeros(0, dtype=np.int64)
        for j in left:
            cols = a.indices[a.indptr[j] : a.indptr[j + 1]]
            cols = cols[~covered[cols]]
            g = float(w[cols].sum())
            if g > best_gain:
                best, best_gain, best_cols = j, g, cols
        left.remove(best)
        if best_gain <= 0:
            continue
        covered[best_cols] = True
        out.append(
            RecommendedSite(
                candidate=best,
                lon=float(c_lon[best]),
                lat=float(c_lat[best]),
                gain=best_gain,
                alone=float(alone[best]),
                households=np.sort(reach_hh[best_cols]),
            )
        )
    return out


def candidates_from_households(
    hh_lon: Any,
    hh_lat: Any,
    mask: Any = None,
    *,
    spacing_m: float = 250.0,
    max_candidates: int = 2000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return candidate sites (lon, lat, households per cell) drawn from household locations.

    The selected households (``mask``; all when None) are binned into cubes of ``spacing_m`` in
    Earth-centred coordinates, which works the same anywhere on Earth. Each cube proposes the
    household nearest to the cube's mean position, so every candidate is a real address. The
    ``max_candidates`` cubes holding most households are kept.
    """
    lon, lat = _as_lonlat(hh_lon, hh_lat, "households")
    sel = np.arange(lon.size) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    if not (spacing_m > 0 and math.isfinite(spacing_m)):
        raise CoverageInputError(f"candidates: spacing {spacing_m!r} m must be positive")
    if sel.size == 0 or max_candidates <= 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    xyz = ecef(lon[sel], lat[sel])
    cell = np.floor(xyz / spacing_m).astype(np.int64)
    _, inverse, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((counts.size, 3))
    np.add.at(sums, inverse, xyz)
    means = sums / counts[:, None]
    d = np.linalg.norm(xyz - means[inverse], axis=1)
    order = np.lexsort((d, inverse))
    first = order[np.r_[0, np.flatnonzero(np.diff(inverse[order])) + 1]]
    # first[c] is the household closest to the mean of cell c (cells in np.unique order).
    keep = np.argsort(-counts, kind="stable")[:max_candidates]
    pick = sel[first[keep]]
    return lon[pick].copy(), lat[pick].copy(), counts[keep].astype(np.int64)
