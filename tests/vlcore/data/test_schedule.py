"""Tests for vlcore.data.schedule: corpus mixing, curriculum, sharding, resume."""
import math

import numpy as np
import pytest

from unimo2.config import CurriculumPhase
from vlcore.data.schedule import Phase, StepSchedule, phases_from_config


def steps_of(sched, name):
    return [s for s in range(sched.total_steps) if sched.corpus(s) == name]


# ---------------------------------------------------------------- mixing
def test_mixer_frequencies_match_ratios():
    sizes = {"a": 64, "b": 64, "c": 64}
    ratios = {"a": 0.5, "b": 0.3, "c": 0.2}
    total = 4000
    sched = StepSchedule(sizes, [Phase(ratios)], total, batch_size=4, seed=3)
    counts = {k: len(steps_of(sched, k)) for k in sizes}
    assert sum(counts.values()) == total
    for k, r in ratios.items():
        # Binomial SD <= sqrt(0.25/4000) = 0.0079; 0.035 is ~4.4 SD.
        assert abs(counts[k] / total - r) < 0.035, counts


def test_unnormalised_ratios_and_zero_ratio():
    sched = StepSchedule({"a": 10, "b": 10, "c": 10}, [Phase({"a": 3.0, "b": 1.0, "c": 0.0})], 2000, 2)
    counts = {k: len(steps_of(sched, k)) for k in "abc"}
    assert counts["c"] == 0
    assert abs(counts["a"] / 2000 - 0.75) < 0.04  # SD 0.0097


# ---------------------------------------------------------------- curriculum
def test_curriculum_switches_exactly_at_until_step():
    sizes = {"a": 20, "b": 20, "c": 20}
    phases = [Phase({"a": 1, "b": 1}, until_step=37), Phase({"c": 1})]
    sched = StepSchedule(sizes, phases, 100, batch_size=4, seed=1)
    first = {sched.corpus(s) for s in range(37)}
    assert first == {"a", "b"}  # only phase-1 corpora, and both of them
    assert all(sched.corpus(s) == "c" for s in range(37, 100))
    assert 37 in sched.phase_switches()


def test_curriculum_from_config_until_step():
    cur = [CurriculumPhase(ratios={"a": 1.0, "c": 0.0}, until_step=5), CurriculumPhase(ratios={"c": 1.0})]
    phases = phases_from_config(cur, {"a": 8, "c": 8}, global_batch=4)
    assert [p.until_step for p in phases] == [5, None]
    assert phases[0].ratios == {"a": 1.0}  # zero ratios dropped
    sched = StepSchedule({"a": 8, "c": 8}, phases, 12, batch_size=4)
    assert [sched.corpus(s) for s in range(12)] == ["a"] * 5 + ["c"] * 7


def test_until_epoch_converts_to_steps():
    sizes = {"a": 100, "b": 30, "c": 7}
    cur = [CurriculumPhase(ratios={"a": 2.0, "b": 1.0, "c": 0.0}, until_epoch=2.5),
           CurriculumPhase(ratios={"c": 1.0}, until_epoch=3),
           CurriculumPhase(ratios={"a": 1.0, "c": 1.0})]
    phases = phases_from_config(cur, sizes, global_batch=16)
    # Phase 1: E * (N_a + N_b) / global = 2.5 * 130 / 16 = 20.3125 -> 21 steps (c has ratio 0).
    end1 = math.ceil(2.5 * 130 / 16)
    assert end1 == 21 and phases[0].until_step == 21
    # Phase 2 starts where phase 1 ends: 3 * 7 / 16 = 1.3125 -> 2 more steps.
    assert phases[1].until_step == 21 + 2
    assert phases[2].until_step is None
    sched = StepSchedule(sizes, phases, 40, batch_size=8, world_size=2)
    assert {sched.corpus(s) for s in range(21)} <= {"a", "b"}
    assert [sched.corpus(s) for s in (21, 22)] == ["c", "c"]


def test_no_curriculum_is_proportional_to_size():
    phases = phases_from_config([], {"a": 300, "b": 100}, global_batch=4)
    sched = StepSchedule({"a": 300, "b": 100}, phases, 3000, batch_size=4, seed=5)
    assert abs(len(steps_of(sched, "a")) / 3000 - 0.75) < 0.035  # SD 0.0079


def test_phase_without_end_must_be_last():
    cur = [CurriculumPhase(ratios={"a": 1.0}), CurriculumPhase(ratios={"a": 1.0})]
    with pytest.raises(ValueError, match=r"curriculum\[0\]"):
        phases_from_config(cur, {"a": 4}, global_batch=2)


# ---------------------------------------------------------------- sharding
@pytest.mark.parametrize("world", [1, 3])
def test_sharding_partitions_every_epoch(world):
    """Sizes divisible by the global batch: within an epoch of a corpus, the
    ranks read disjoint index sets whose union is every record exactly once."""
    sizes = {"a": 48, "b": 96}
    b = 4
    g = b * world
    scheds = [StepSchedule(sizes, [Phase({"a": 1, "b": 1})], 240, batch_size=b, seed=9, rank=r, world_size=world)
              for r in range(world)]
    for name, n in sizes.items():
        steps = steps_of(scheds[0], name)
        for r in range(1, world):
            assert steps_of(scheds[r], name) == steps  # all ranks agree on the corpus of a step
        per_epoch = n // g
        epochs = len(steps) // per_epoch
        assert epochs >= 2
        orders = []
        for e in range(epochs):
            chunk = steps[e * per_epoch:(e + 1) * per_epoch]
            sets = []
            for r in range(world):
                idx = np.concatenate([scheds[r].indices(s)[1] for s in chunk])
                assert all(scheds[r].indices(s)[0] == name for s in chunk)
                assert len(set(idx.tolist())) == len(idx)  # no repeats within a rank
                sets.append(set(idx.tolist()))
            for r1 in range(world):
                for r2 in range(r1 + 1, world):
                    assert not sets[r1] & sets[r2]
            assert set().union(*sets) == set(range(n))
            orders.append(np.concatenate([scheds[0].indices(s)[1] for s in chunk]))
        # Every epoch is reshuffled.
        assert not np.array_equal(orders[0], orders[1])


@pytest.mark.parametrize("world", [1, 2])
def test_batches_straddle_epoch_boundaries(world):
    """Size 10, global batch 4*W: the global stream of indices (rank slices in
    rank order, steps in order) must be consecutive permutations of range(10),
    also across the batches that straddle two epochs."""
    n, b = 10, 4
    total = 15
    scheds = [StepSchedule({"a": n}, [Phase({"a": 1})], total, batch_size=b, seed=2, rank=r, world_size=world)
              for r in range(world)]
    stream = np.concatenate([scheds[r].indices(s)[1] for s in range(total) for r in range(world)])
    assert len(stream) == total * b * world
    full = len(stream) // n
    for e in range(full):
        assert sorted(stream[e * n:(e + 1) * n].tolist()) == list(range(n)), e
    assert len(set(stream[full * n:].tolist())) == len(stream) - full * n  # partial epoch: no repeats
    # Fractional epoch reported for logging: (steps so far) * global / n.
    assert scheds[0].epoch_of(4) == pytest.approx(5 * b * world / n)


# ---------------------------------------------------------------- determinism / resume
def make(seed=0, rank=0, world=2):
    return StepSchedule({"a": 50, "b": 23}, [Phase({"a": 1, "b": 2}, until_step=30), Phase({"a": 1})], 80,
                        batch_size=3, seed=seed, rank=rank, world_size=world)


def test_deterministic_across_instances():
    s1, s2, s3 = make(seed=4), make(seed=4), make(seed=5)
    for s in range(80):
        c1, i1 = s1.indices(s)
        c2, i2 = s2.indices(s)
        assert c1 == c2
        np.testing.assert_array_equal(i1, i2)
    assert any(s1.corpus(s) != s3.corpus(s) or not np.array_equal(s1.indices(s)[1], s3.indices(s)[1])
               for s in range(80))


def test_indices_do_not_depend_on_call_order():
    """Resume: the data of step s is a function of s alone."""
    ref = make(seed=6)
    expected = {s: ref.indices(s) for s in range(80)}
    order = np.random.default_rng(0).permutation(80)
    shuffled = make(seed=6)
    other = make(seed=7)  # interleaved calls on another instance share nothing
    for s in order:
        other.indices(int((s * 7) % 80))
        name, idx = shuffled.indices(int(s))
        assert name == expected[s][0]
        np.testing.assert_array_equal(idx, expected[s][1])
    fresh = make(seed=6)  # a resumed run asks for step 61 first
    np.testing.assert_array_equal(fresh.indices(61)[1], expected[61][1])


# ---------------------------------------------------------------- errors
def test_empty_corpus_rejected():
    with pytest.raises(ValueError, match="'b' is empty"):
        StepSchedule({"a": 5, "b": 0}, [Phase({"a": 1})], 10, batch_size=2)


def test_curriculum_ending_before_total_steps_rejected():
    with pytest.raises(ValueError, match="ends at step 10"):
        StepSchedule({"a": 5}, [Phase({"a": 1}, until_step=10)], 20, batch_size=2)


def test_unknown_corpus_rejected():
    with pytest.raises(ValueError, match="nope"):
        StepSchedule({"a": 5}, [Phase({"nope": 1})], 10, batch_size=2)
