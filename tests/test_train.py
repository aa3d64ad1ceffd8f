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


def test_pasted_distractors_only_hide_the_target_never_add_to_it(tmp_path):
    import numpy as np

    from segmentation.data import JointSamples, Sequence

    def sequence(name, value, box):
        frames = np.full((5, 64, 96, 3), value, np.uint8)
        masks = np.zeros((5, 64, 96), np.uint8)
        masks[:, box[0] : box[1], box[2] : box[3]] = 1
        return Sequence(name, frames, masks, tmp_path, tmp_path)

    target, other = sequence("target", 0, (20, 44, 30, 66)), sequence("other", 255, (10, 50, 20, 80))
    samples = JointSamples([other], (96, 64), seed=0, distractors=1.0)
    hidden = pasted = 0
    for _ in range(40):
        frames, masks = samples._paste_distractor(target.frames.astype(np.float32), target.masks)
        assert not (masks & ~target.masks.astype(bool)).any()  # the target never grows
        assert (frames[masks > 0] <= 128).all()  # what stays target is at most half covered, at its edge
        hidden += int(masks.sum() < target.masks.sum())
        pasted += int((frames > 0).any())
    assert hidden and pasted > hidden  # both in front (hiding part of the target) and behind it
