"""Site recommendation (maximal covering location) against brute force, its bound, and spopt."""

from __future__ import annotations

import itertools

import numpy as np
import pulp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from spopt.locate import MCLP

from gis.coverage import CoverageInputError, compute_coverage
from gis.mclp import candidates_from_households, greedy_guarantee, recommend_sites

REF = Geod(ellps="WGS84")


def geod_matrix(hh_lon, hh_lat, sp_lon, sp_lat) -> np.ndarray:
    n, m = len(hh_lon), len(sp_lon)
    _, _, d = REF.inv(
        np.repeat(hh_lon, m), np.repeat(hh_lat, m), np.tile(sp_lon, n), np.tile(sp_lat, n)
    )
    return np.asarray(d).reshape(n, m)


def scatter(rng, lon0, lat0, n, max_m):
    az = rng.uniform(0, 360, n)
    dist = np.sqrt(rng.uniform(0, 1, n)) * max_m
    lon, lat, _ = REF.fwd(np.full(n, lon0), np.full(n, lat0), az, dist)
    return np.asarray(lon), np.asarray(lat)


def instance(seed: int, lon0: float = 116.4, lat0: float = 39.9):
    """Households in clumps, a few existing stations and candidate sites, all within ~4 km."""
    rng = np.random.default_rng(seed)
    c_lon, c_lat = scatter(rng, lon0, lat0, 6, 3500.0)
    parts = [
        scatter(rng, x, y, int(rng.integers(10, 40)), 700.0)
        for x, y in zip(c_lon, c_lat, strict=True)
    ]
    hh_lon = np.concatenate([p[0] for p in parts])
    hh_lat = np.concatenate([p[1] for p in parts])
    st_lon, st_lat = scatter(rng, lon0, lat0, 2, 3500.0)
    cand_lon, cand_lat = scatter(rng, lon0, lat0, int(rng.integers(5, 10)), 4000.0)
    people = rng.integers(1, 7, hh_lon.size)
    return hh_lon, hh_lat, st_lon, st_lat, cand_lon, cand_lat, people


def brute_force(hh_lon, hh_lat, st_lon, st_lat, cand_lon, cand_lat, k, radius, weights):
    """Best total newly covered weight over every set of k candidates (geodesic distances)."""
    covered = (geod_matrix(hh_lon, hh_lat, st_lon, st_lat) <= radius).any(axis=1)
    reach = (geod_matrix(hh_lon, hh_lat, cand_lon, cand_lat) <= radius) & ~covered[:, None]
    best = 0.0
    for combo in itertools.combinations(range(len(cand_lon)), min(k, len(cand_lon))):
        best = max(best, float(weights[reach[:, list(combo)].any(axis=1)].sum()))
    return covered, best


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), by_people=st.booleans())
def test_exact_equals_brute_force(seed, k, by_people):
    hh_lon, hh_lat, st_lon, st_lat, cand_lon, cand_lat, people = instance(seed)
    weights = people.astype(float) if by_people else np.ones(hh_lon.size)
    covered, best = brute_force(
        hh_lon, hh_lat, st_lon, st_lat, cand_lon, cand_lat, k, 1000.0, weights
    )
    model = compute_coverage(hh_lon, hh_lat, st_lon, st_lat, 1000.0)
    assert (model.covered == covered).all()
    for method in ("exact", "auto"):
        rec = recommend_sites(
            hh_lon,
            hh_lat,
            model.covered,
            cand_lon,
            cand_lat,
            k,
            radius_m=1000.0,
            weights=weights,
            method=method,
        )
        assert rec.total_gain == pytest.approx(best)
        assert rec.optimal and rec.guarantee == 1.0
        assert len(rec.sites) <= k
        # The gains add up, and each site's households are uncovered ones within its radius.
        assert sum(s.gain for s in rec.sites) == pytest.approx(rec.total_gain)
        seen: set[int] = set()
        for s in rec.sites:
            assert s.gain > 0 and s.alone >= s.gain
            hh = s.households
            assert not covered[hh].any() and not seen & set(hh.tolist())
            d = geod_matrix(hh_lon[hh], hh_lat[hh], [s.lon], [s.lat])[:, 0]
            assert (d <= 1000.0).all()
            assert weights[hh].sum() == pytest.approx(s.gain)
            seen |= set(hh.tolist())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_greedy_never_below_its_guarantee(seed, k):
    hh_lon, hh_lat, st_lon, st_lat, cand_lon, cand_lat, _ = instance(seed)
    weights = np.ones(hh_lon.size)
    covered, best = brute_force(
        hh_lon, hh_lat, st_lon, st_lat, cand_lon, cand_lat, k, 1000.0, weights
    )
    rec = recommend_sites(
        hh_lon, hh_lat, covered, cand_lon, cand_lat, k, radius_m=1000.0, method="greedy"
    )
    assert rec.method == "greedy"
    assert rec.total_gain >= greedy_guarantee(k) * best - 1e-9
    assert rec.total_gain <= best + 1e-9
    assert rec.upper_bound >= best - 1e-9  # the stated bound really bounds the optimum
    if not rec.optimal:
        assert rec.guarantee == pytest.approx(greedy_guarantee(k))


def test_greedy_can_be_beaten_and_exact_finds_the_better_pair():
    # Two rows of 10 households, 690-1140 m west and east of a middle site, which reaches 7
    # of each (14); a site on each row reaches its 10. Greedy takes the middle: 14 + 3 = 17.
    lon0, lat0 = 116.4, 39.9
    row = np.linspace(690.0, 1140.0, 10)
    offsets = np.concatenate([-row, row])
    hh_lon, hh_lat, _ = REF.fwd(np.full(20, lon0), np.full(20, lat0), np.full(20, 90.0), offsets)
    cand_x = np.array([-915.0, 0.0, 915.0])
    c_lon, c_lat, _ = REF.fwd(np.full(3, lon0), np.full(3, lat0), np.full(3, 90.0), cand_x)
    greedy = recommend_sites(hh_lon, hh_lat, None, c_lon, c_lat, 2, method="greedy")
    exact = recommend_sites(hh_lon, hh_lat, None, c_lon, c_lat, 2, method="exact")
    assert greedy.total_gain == 17 and not greedy.optimal
    assert greedy.upper_bound >= 20
    assert exact.total_gain == 20 and exact.optimal and exact.method == "exact"
    assert sorted(s.candidate for s in exact.sites) == [0, 2]
    assert "greedy" in greedy.describe() and "optimal" in exact.describe()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # PuLP 3 announcing PuLP 4
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_at_least_as_good_as_spopt_mclp(seed):
    hh_lon, hh_lat, st_lon, st_lat, cand_lon, cand_lat, people = instance(seed)
    k = 3
    fac_lon = np.concatenate([st_lon, cand_lon])
    fac_lat = np.concatenate([st_lat, cand_lat])
    cost = geod_matrix(hh_lon, hh_lat, fac_lon, fac_lat)
    fixed = np.r_[np.ones(st_lon.size, dtype=int), np.zeros(cand_lon.size, dtype=int)]
    problem = MCLP.from_cost_matrix(
        cost,
        np.ones(hh_lon.size),
        1000.0,
        p_facilities=st_lon.size + k,
        predefined_facilities_arr=fixed,
    )
    problem = problem.solve(pulp.PULP_CBC_CMD(msg=False))
    spopt_covered = hh_lon.size - problem.n_cli_uncov

    model = compute_coverage(hh_lon, hh_lat, st_lon, st_lat, 1000.0)
    rec = recommend_sites(hh_lon, hh_lat, model.covered, cand_lon, cand_lat, k)
    ours = int(model.covered.sum()) + rec.total_gain
    print(f"covered households: ours {ours:g}, spopt MCLP {spopt_covered}")
    assert ours >= spopt_covered
    assert rec.optimal


def test_candidates_from_households_are_real_addresses_close_to_every_household():
    for lat0 in (39.9, 60.2):
        rng = np.random.default_rng(8)
        hh_lon, hh_lat = scatter(rng, 116.4, lat0, 2000, 3000.0)
        mask = rng.random(hh_lon.size) < 0.3
        c_lon, c_lat, counts = candidates_from_households(hh_lon, hh_lat, mask, spacing_m=200.0)
        assert counts.sum() == mask.sum()
        pairs = set(zip(hh_lon[mask].tolist(), hh_lat[mask].tolist(), strict=True))
        assert all((x, y) in pairs for x, y in zip(c_lon.tolist(), c_lat.tolist(), strict=True))
        # Every selected household lies within a cube diagonal (346 m) of some candidate.
        d = geod_matrix(hh_lon[mask], hh_lat[mask], c_lon, c_lat).min(axis=1)
        assert d.max() <= 200.0 * np.sqrt(3) + 1e-6
        few = candidates_from_households(hh_lon, hh_lat, mask, spacing_m=200.0, max_candidates=5)
        assert few[0].size == 5 and (few[2] == np.sort(counts)[::-1][:5]).all()


def test_nothing_to_gain_returns_no_sites():
    rec = recommend_sites([116.4], [39.9], [True], [116.4], [39.9], 3)
    assert rec.sites == [] and rec.total_gain == 0 and rec.optimal
    with pytest.raises(CoverageInputError):
        recommend_sites([116.4], [39.9], [False], [116.4], [39.9], -1)
