"""The step schedule of pretraining and fine-tuning (mlcore.schedule.StepBudget): progress
is the larger of the steps' and the time budget's share, the cosine decay follows it, and a
warm-up over a share of the progress ends even when the time budget cuts the run short."""
import math

import pytest

import mlcore.schedule as schedule
from mlcore.schedule import StepBudget


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(schedule.time, "perf_counter", lambda: now[0])
    return now


def test_steps_alone_give_a_linear_warm_up_then_a_cosine(clock):
    plan = StepBudget(100, None, warmup=10)
    factors = []
    while True:
        factors.append(plan.lr_factor())
        if not plan.tick():
            break
    assert len(factors) == 100
    assert factors[:10] == pytest.approx([(k + 1) / 10 for k in range(10)])
    assert factors[10] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))
    assert factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))


def test_a_warm_up_fraction_equals_the_step_warm_up_when_the_steps_end_the_run(clock):
    by_steps, by_share = StepBudget(781, None, warmup=78), StepBudget(781, None, warmup_fraction=78 / 781)
    for _ in range(120):
        assert by_share.lr_factor() == pytest.approx(by_steps.lr_factor())
        by_steps.tick()
        by_share.tick()


def test_a_time_budget_that_ends_the_run_early_still_ends_the_warm_up_and_decays_to_zero(clock):
    plan = StepBudget(1000, 10.0, warmup=100)  # 1 s a step: the budget allows 10 of 1000 steps
    share = StepBudget(1000, 10.0, warmup_fraction=0.1)
    steps = []
    for _ in range(10):
        steps.append((plan.lr_factor(), share.lr_factor()))
        clock[0] += 1.0
        plan.tick()
        go = share.tick()
    assert not go and share.progress == 1.0
    assert max(f for f, _ in steps) <= 0.1  # the step warm-up never got past 10% of the rate
    assert max(f for _, f in steps) == pytest.approx(1.0, abs=0.05)  # the share warm-up did
    assert steps[-1][1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))
