"""Routing (table-driven), sensor classes, and LPT packing (property-based)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfx.classify.analysis import EraAnalysis
from streamfx.classify.balance import imbalance, lpt
from streamfx.classify.config import RoutingConfig
from streamfx.classify.default_profiles import REFERENCE_PROFILE
from streamfx.classify.profiles import classify_sensor
from streamfx.classify.routing import route, routing_policy
from streamfx.errors import StreamfxError
from streamfx.model import Era

ERA = Era("e", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
DEFAULTS = RoutingConfig()


def analysis(readings: int, ratio: float = 0.0, complexity: float = 0.0) -> EraAnalysis:
    return EraAnalysis(
        era=ERA,
        readings_per_sensor={"s": readings} if readings else {},
        gpu_suitable_ratio=ratio,
        complexity_score=complexity,
        efficient_share=complexity,
        estimated_cost=1.0,
    )


# (readings, gpu_suitable_ratio, complexity_score) -> (lane, words in the rule)
SMART = [
    (0, 0.0, 0.0, None, "no readings"),
    (9_999, 1.0, 1.0, "cpu", "< 10,000"),  # just below the small-era threshold
    (10_000, 0.0, 0.0, "cpu", "default"),  # at it: not small any more
    (500_000, 0.0, 0.0, "cpu", "default"),  # at the large threshold: not large
    (500_001, 0.0, 0.0, "gpu", "> 500,000"),  # just above
    (20_000, 0.6, 0.0, "cpu", "default"),  # ratio at 0.6 is not above it
    (20_000, 0.61, 0.0, "gpu", "gpu_suitable_ratio 0.61 > 0.6"),
    (20_000, 0.0, 0.5, "cpu", "default"),
    (20_000, 0.0, 0.51, "gpu", "complexity_score 0.51 > 0.5"),
    (20_000, 0.7, 0.9, "gpu", "gpu_suitable_ratio"),  # the first matching rule wins
]


@pytest.mark.parametrize(("readings", "ratio", "complexity", "lane", "rule"), SMART)
def test_smart_policy(readings, ratio, complexity, lane, rule) -> None:
    decision = route(analysis(readings, ratio, complexity), DEFAULTS, "smart")
    assert decision.lane == lane
    assert rule in decision.rule


@pytest.mark.parametrize(
    ("readings", "lane"), [(99_999, "cpu"), (100_000, "gpu"), (100_001, "gpu"), (0, None)]
)
def test_size_policy(readings: int, lane: str | None) -> None:
    decision = route(analysis(readings, ratio=1.0, complexity=1.0), DEFAULTS, "size")
    assert decision.lane == lane


def test_thresholds_are_configurable() -> None:
    config = RoutingConfig(cpu_below_readings=100, gpu_ratio_above=0.2)
    assert route(analysis(150, ratio=0.3), config, "smart").lane == "gpu"
    assert route(analysis(150, ratio=0.3), DEFAULTS, "smart").lane == "cpu"


@pytest.mark.parametrize(
    ("env", "yaml_policy", "policy"),
    [
        (None, "smart", "smart"),
        (None, "size", "size"),
        ("true", "size", "smart"),
        ("false", "smart", "size"),
        ("FALSE", "smart", "size"),
        ("", "size", "size"),
    ],
)
def test_environment_overrides_policy(monkeypatch, env, yaml_policy, policy) -> None:
    if env is None:
        monkeypatch.delenv("USE_SMART_DISTRIBUTION", raising=False)
    else:
        monkeypatch.setenv("USE_SMART_DISTRIBUTION", env)
    assert routing_policy(RoutingConfig(policy=yaml_policy)) == policy


def test_bad_environment_value(monkeypatch) -> None:
    monkeypatch.setenv("USE_SMART_DISTRIBUTION", "maybe")
    with pytest.raises(StreamfxError, match="USE_SMART_DISTRIBUTION"):
        routing_policy(DEFAULTS)


@pytest.mark.parametrize(
    ("sensor", "lane", "features"),
    [
        ("air_temp_c", "gpu", "efficient"),
        ("pipe_temp_1_c", "gpu", "minimal"),
        ("dli_sum", None, "efficient"),
        ("vent_pos_1_percent", "cpu", "minimal"),
        ("rain_status", "cpu", "minimal"),
        ("unknown_sensor", None, "minimal"),
    ],
)
def test_reference_profile(sensor: str, lane: str | None, features: str) -> None:
    cls = classify_sensor(sensor, REFERENCE_PROFILE.rules)
    assert (cls.lane, cls.features) == (lane, features)


def _makespan(costs, bins) -> float:
    return max((sum(costs[i] for i in b) for b in bins), default=0.0)


costs_strategy = st.lists(st.floats(0.0, 1000.0, allow_nan=False), min_size=0, max_size=60)


@settings(max_examples=300, deadline=None)
@given(costs=costs_strategy, workers=st.integers(1, 8))
def test_lpt_assigns_every_era_once_within_bound(costs: list[float], workers: int) -> None:
    packing = lpt(costs, workers)
    assert sorted(i for b in packing.bins for i in b) == list(range(len(costs)))
    assert len(packing.bins) == workers
    ranked = sorted(costs, reverse=True)
    # Valid lower bounds on any packing: the largest era, the mean load, and (pigeonhole) the
    # m-th and (m+1)-th largest eras sharing a worker. The bound omits the third, but
    # without it 4 equal eras on 3 workers (makespan 2x, lower bound 8/3 x) would break it.
    pair = ranked[workers - 1] + ranked[workers] if len(ranked) > workers else 0.0
    bound = max(ranked[0] if ranked else 0.0, sum(costs) / workers, pair)
    assert _makespan(costs, packing.bins) <= 4 / 3 * bound + 1e-9
    assert packing.loads == pytest.approx([sum(costs[i] for i in b) for b in packing.bins])


@settings(max_examples=150, deadline=None)
@given(costs=st.lists(st.integers(1, 50), min_size=1, max_size=7), workers=st.integers(1, 3))
def test_lpt_within_grahams_bound_of_optimum(costs: list[int], workers: int) -> None:
    optimum = min(
        max(sum(c for c, w in zip(costs, assign, strict=True) if w == k) for k in range(workers))
        for assign in itertools.product(range(workers), repeat=len(costs))
    )
    packing = lpt(costs, workers)
    assert _makespan(costs, packing.bins) <= (4 / 3 - 1 / (3 * workers)) * optimum + 1e-9


def test_imbalance() -> None:
    assert imbalance(lpt([3, 3, 3, 3], 2).loads) == pytest.approx(1.0)
    assert imbalance(lpt([9, 1], 2).loads) == pytest.approx(9 / 5)
    assert imbalance([0.0, 0.0]) is None  # no load to compare


def test_profile_conflicts_are_reported() -> None:
    from streamfx.classify.profiles import SensorProfile, SensorRule, profile_conflicts

    factory = SensorProfile(
        "factory",
        (SensorRule("air_temp_c", lane="cpu"), SensorRule("air_temp_c", lane="gpu")),
    )
    same = SensorProfile("same", (SensorRule("air_temp_c", lane="gpu"),))
    assert profile_conflicts([REFERENCE_PROFILE, factory, same]) == [
        ("air_temp_c", "lane", "factory: cpu; reference: gpu; same: gpu")
    ]
    assert profile_conflicts([REFERENCE_PROFILE, same]) == []
