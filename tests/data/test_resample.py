"""data.resample: each run seed draws its own training subset; validation and ids stay put."""

from __future__ import annotations

import pytest
import torch

from ablate.data import DataError
from ablate.execute.runner import Datasets
from ablate.experiment.experiment import parse_experiment

RAW = {
    "name": "rs",
    "seeds": [0, 1],
    "data": {"dataset": "shapes", "train_size": 40, "val_size": 16},
    "train": {"batch_size": 8},
}


def cells(**data):
    raw = {**RAW, "data": {k: v for k, v in {**RAW["data"], **data}.items() if v is not None}}
    return parse_experiment(raw, "rs.toml").cells()


def test_resample_draws_per_run_seed_and_keeps_validation_fixed():
    c0, c1 = cells(resample=True)
    data = Datasets()
    a, b, a_again = data(c0), data(c1), data(c0)
    assert a.train_x.shape[0] == b.train_x.shape[0] == 40
    assert not torch.equal(a.train_x, b.train_x)  # another seed, other images
    assert torch.equal(a.train_x, a_again.train_x) and torch.equal(a.train_y, a_again.train_y)  # same seed, same draw
    assert torch.equal(a.val_x, b.val_x) and a.mean == b.mean  # validation and normalization fixed
    assert torch.bincount(a.train_y).tolist() == [4] * 10  # class-balanced
    assert a.info["resampled"] == {"seed": 0, "train_size": 40, "from": a.info["resampled"]["from"]}


def test_without_resample_every_seed_trains_on_the_same_images():
    c0, c1 = cells()
    data = Datasets()
    assert torch.equal(data(c0).train_x, data(c1).train_x)


def test_resample_needs_a_subset_smaller_than_the_training_set():
    (c0, _) = cells(resample=True, train_size=None)
    with pytest.raises(DataError, match="data.resample = true"):
        Datasets()(c0)


def test_resample_is_part_of_the_run_id_only_when_on():
    off, on, default = cells(resample=False)[0], cells(resample=True)[0], cells()[0]
    assert off.run_id == default.run_id != on.run_id
