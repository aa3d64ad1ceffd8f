"""Offline training end to end on two tiny synthetic sequences: stages, checkpoints, validation, resume, export."""

from __future__ import annotations

import json
import shutil

import torch

from segmentation.synthetic import make_clip
from segmentation.train import TrainConfig, train
from segmentation.weights import load_model


def davis_layout(root, name, seed):
    clip = make_clip(root / f"src-{name}", n_frames=6, size=(96, 64), n_objects=1, seed=seed, as_folder=True)
    shutil.copytree(clip.video, root / "data" / name / "frames")
    shutil.copytree(clip.gt_dir, root / "data" / name / "masks")


def test_train_checkpoints_validates_resumes_and_exports(tmp_path):
    davis_layout(tmp_path, "alpha", 1)
    davis_layout(tmp_path, "beta", 2)
    config = TrainConfig(
        data=[str(tmp_path / "data")], out=str(tmp_path / "ck"), val=["beta"], temporal_iters=2, joint_iters=2,
        batch=2, crop=(64, 64), checkpoint_every=1, export=str(tmp_path / "w.pt"), synthetic=1,
    )  # fmt: skip
    train(config, device="cpu")
    assert len(list((tmp_path / "ck" / "synthetic" / "synth0" / "masks").glob("*.png"))) == 40
    history = json.loads((tmp_path / "ck" / "history.json").read_text())
    assert [(h["stage"], h["iteration"]) for h in history] == [
        ("temporal", 1),
        ("temporal", 2),
        ("joint", 1),
        ("joint", 2),
    ]
    assert 0 <= history[-1]["val"]["JF"] <= 1 and history[-1]["val"]["sequences"][0]["sequence"] == "beta"
    model, meta = load_model(tmp_path / "w.pt")
    assert meta["stage"] == "joint" and meta["iteration"] == 2
    assert all(p.dtype == torch.float32 for p in model.parameters())

    config.joint_iters = 3  # resume carries on from iteration 2 of the joint stage
    train(config, device="cpu", resume=True)
    history = json.loads((tmp_path / "ck" / "history.json").read_text())
    assert [(h["stage"], h["iteration"]) for h in history][-1] == ("joint", 3)
    assert len(history) == 5
