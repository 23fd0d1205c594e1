"""vlcore.data.finetune: epoch shuffling, rank shards, exact resume, bad records."""
import json
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

from vlcore.framework.config import load_config
from vlcore.framework.registry import TASK
from vlcore.data.finetune import (FinetuneDataConfig, FinetuneTask, FinetuneTrainData, ManifestCorpus,
                                  steps_for_epochs)
from vlcore.formats.records import RecordError
from vlcore.framework.run import BuildContext
from vlcore.framework.registry import TRAIN_DATA
from vlcore.framework.schema import GlobalConfig, TrainConfig


@dataclass
class ToyTaskConfig:
    name: str = "ToyFinetuneTask"
    noise: bool = True


class ToyTask(FinetuneTask):
    """Records {"id": int, "x": float}; the batch holds ids and a random
    draw per sample (so resume must reproduce the per-sample RNGs too)."""
    required = ("id", "x")

    def __init__(self, cfg):
        self.cfg = cfg

    def load(self, record, where, rng):
        if not isinstance(record["x"], (int, float)):
            raise RecordError(f"{where}: 'x' must be a number")
        return {"id": record["id"], "draw": float(rng.random()) if self.cfg.noise else 0.0}

    def collate(self, samples, rngs, batch_seed):
        return {"ids": np.asarray([s["id"] for s in samples], np.int64),
                "draws": np.asarray([s["draw"] for s in samples], np.float64)}


@TASK.register("ToyFinetuneTask", config=ToyTaskConfig)
def _build_toy(cfg, ctx):
    return ToyTask(cfg)


def write_manifest(path, n, bad=()):
    with open(path, "w") as f:
        for i in range(n):
            x = "oops" if i in bad else i * 0.5
            f.write(json.dumps({"id": i, "x": x}) + "\n")
    return str(path)


def make_data(path, seed=0, rank=0, world=1, batch=4, steps=20, accum=1, strict=False):
    cfg = TrainConfig(Global=GlobalConfig(seed=seed, accum_steps=accum, strict_data=strict))
    ctx = BuildContext(cfg, None, rank=rank, world_size=world, seed=seed, total_micro_steps=steps)
    data_cfg = FinetuneDataConfig(path=path, task=ToyTaskConfig(), batch_size=batch)
    return FinetuneTrainData(data_cfg, ctx)


def batches(data, start=0):
    b = data.make_batches(start)
    return [b[i] for i in range(len(b))]


def ids(data, start=0):
    return [b["ids"].tolist() for b in batches(data, start)]


def test_epochs_are_seeded_permutations(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 12)
    a = np.concatenate(ids(make_data(path, seed=1, steps=9)))  # 3 epochs of 12 at batch 4
    b = np.concatenate(ids(make_data(path, seed=1, steps=9)))
    c = np.concatenate(ids(make_data(path, seed=2, steps=9)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    epochs = a.reshape(3, 12)
    for e in epochs:
        assert sorted(e.tolist()) == list(range(12))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    assert not np.array_equal(epochs[0], np.arange(12))


def test_batch_straddling_an_epoch_keeps_every_record_once_per_epoch(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 10)
    stream = np.concatenate(ids(make_data(path, batch=4, steps=5)))  # 20 = two epochs of 10
    assert sorted(stream[:10].tolist()) == list(range(10))
    assert sorted(stream[10:].tolist()) == list(range(10))


def test_two_rank_shards_disjoint_and_covering(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 24)
    # one epoch: 24 records / (4 per rank x 2 ranks) = 3 steps
    r0 = np.concatenate(ids(make_data(path, seed=5, rank=0, world=2, steps=3)))
    r1 = np.concatenate(ids(make_data(path, seed=5, rank=1, world=2, steps=3)))
    assert not set(r0) & set(r1)
    assert sorted(np.concatenate([r0, r1]).tolist()) == list(range(24))
    # and the two ranks together read the single-rank order at global batch 8
    single = np.concatenate(ids(make_data(path, seed=5, batch=8, steps=3))).reshape(3, 8)
    np.testing.assert_array_equal(single[:, :4].ravel(), r0)
    np.testing.assert_array_equal(single[:, 4:].ravel(), r1)


def test_resume_from_any_micro_step_is_exact(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 11)
    full = batches(make_data(path, seed=3, steps=10))
    for start in (1, 4, 7, 9):
        resumed = batches(make_data(path, seed=3, steps=10), start)
        assert len(resumed) == 10 - start
        for a, b in zip(full[start:], resumed):
            assert a["step"] == b["step"]
            np.testing.assert_array_equal(a["ids"], b["ids"])
            np.testing.assert_array_equal(a["draws"], b["draws"])


def test_loader_with_workers_matches(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 9)
    data = make_data(path, seed=4, steps=6)
    direct = ids(data, 2)
    data.cfg.num_workers = 2
    via_loader = [b["ids"].numpy().tolist() for b in data.loader(2)]
    assert via_loader == direct


def test_bad_record_skipped_or_strict(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 8, bad={3})
    out = batches(make_data(path, batch=8, steps=1))
    assert 3 not in out[0]["ids"] and len(out[0]["ids"]) == 8
    assert any("m.jsonl:4" in s and "'x'" in s for s in out[0]["skipped"])
    strict = batches(make_data(path, batch=8, steps=1, strict=True))
    assert "error" in strict[0] and "m.jsonl:4" in strict[0]["error"]


def test_missing_key_names_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": 0, "x": 1}\n{"id": 1}\n')
    b = batches(make_data(str(path), batch=2, steps=1, strict=True))
    assert "m.jsonl:2" in b[0]["error"] and "x" in b[0]["error"]


def test_steps_per_epoch_and_describe(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 30)
    data = make_data(path, batch=4, world=1, steps=12, accum=2)
    assert data.steps_per_epoch == pytest.approx(30 / 8)
    assert steps_for_epochs(2, 30, 4, 2) == 8
    assert any("epochs" in line for line in data.describe())


def test_config_section_and_missing_file(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", 5)
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({"DataLoader": {"Train": {"name": "Finetune", "path": path, "batch_size": 2,
                                                             "task": {"name": "ToyFinetuneTask", "noise": False}}}}))
    import unimo2.builders  # noqa: F401  (Arch registry entries)
    cfg = load_config(TrainConfig, str(conf), ["Arch.name=UNIMO2"])
    assert isinstance(cfg.DataLoader.Train.task, ToyTaskConfig) and cfg.DataLoader.Train.task.noise is False
    ctx = BuildContext(cfg, None, total_micro_steps=3)
    data = TRAIN_DATA.build(cfg.DataLoader.Train, ctx=ctx)
    assert [len(b) for b in ids(data)] == [2, 2, 2]
    cfg.DataLoader.Train.path = str(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="DataLoader.Train.path.*nope.jsonl"):
        TRAIN_DATA.build(cfg.DataLoader.Train, ctx=ctx)


class KindTask(FinetuneTask):
    kind, required = "snli_ve", ("label",)

    def load(self, record, where, rng):
        return {"id": 0, "draw": 0.0}

    collate = ToyTask.collate


def test_manifest_kind_validated_with_file_and_line(tmp_path):
    path = tmp_path / "ve.jsonl"
    good = {"id": "a", "image": "x.jpg", "image_id": "x", "hypothesis": "h", "label": "neutral"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, label="maybe")) + "\n")
    data = make_data(str(path), batch=2, steps=1, strict=True)
    data.corpus = ManifestCorpus(str(path), KindTask())
    err = batches(data)[0]["error"]
    assert "ve.jsonl:2" in err and "'label'" in err
