"""Offline training end to end on two tiny synthetic sequences: stages, checkpoints, validation, resume, export,
and a run carried on across sittings from its exported weights."""

from __future__ import annotations

import json
import math
import shutil

import cv2
import pytest
import torch

from segmentation.errors import InputError
from segmentation.runtime import native_bf16
from segmentation.synthetic import make_clip
from segmentation.train import TrainConfig, train
from segmentation.weights import load_model, save_weights


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
    # bf16 where the CPU computes it natively (runtime.native_bf16), with fp32 weights and a finite loss.
    assert meta["precision"] == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    assert math.isfinite(history[-1]["loss"]) and history[-1]["loss"] > 0
    assert all(p.dtype == torch.float32 for p in model.parameters())

    config.joint_iters = 3  # resume carries on from iteration 2 of the joint stage
    train(config, device="cpu", resume=True)
    history = json.loads((tmp_path / "ck" / "history.json").read_text())
    assert [(h["stage"], h["iteration"]) for h in history][-1] == ("joint", 3)
    assert len(history) == 5

    # --init carries a trained model on, joint stage only: one iteration at the warm-up's small rate.
    config = TrainConfig(
        data=[str(tmp_path / "data")], out=str(tmp_path / "ck2"), temporal_iters=0, joint_iters=1, batch=2,
        crop=(64, 64), export=str(tmp_path / "w2.pt"), init=str(tmp_path / "w.pt"), new_backgrounds=1.0,
    )  # fmt: skip
    train(config, device="cpu")
    history = json.loads((tmp_path / "ck2" / "history.json").read_text())
    assert [(h["stage"], h["iteration"]) for h in history] == [("joint", 1)]
    carried, _ = load_model(tmp_path / "w2.pt")
    start = dict(model.named_parameters())  # parameters: BatchNorm statistics move in training mode
    drift = max((p - start[k]).abs().max().item() for k, p in carried.named_parameters())
    assert 0 < drift < 0.01  # trained, a little


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


def test_new_backgrounds_keep_the_target_and_paint_the_other_objects_out(tmp_path):
    import numpy as np

    from segmentation.data import JointSamples, Sequence

    rng = np.random.default_rng(0)
    # The target clip: a bright square moving right over a dark texture; the other: a textured scene with a
    # mid-grey object that must not survive as background.
    frames = rng.integers(0, 60, (5, 64, 96, 3)).astype(np.float32)
    masks = np.zeros((5, 64, 96), np.uint8)
    for i in range(5):
        masks[i, 20:40, 10 + 4 * i : 30 + 4 * i] = 1
        frames[i][masks[i] > 0] = 250
    scene = rng.integers(0, 256, (6, 64, 96, 3)).astype(np.uint8)
    scene_masks = np.zeros((6, 64, 96), np.uint8)
    scene_masks[:, 5:60, 50:90] = 1
    scene[scene_masks > 0] = 128
    other = Sequence("other", scene, scene_masks, tmp_path, tmp_path)
    samples = JointSamples([other], (96, 64), seed=0, new_backgrounds=1.0)
    for _ in range(10):
        out_frames, out_masks = samples._new_background(frames, masks)
        areas = out_masks.reshape(5, -1).sum(1)
        assert areas.min() > 0.3 * 400 and areas.max() < 2.0 * 400  # moved and rescaled, never lost
        inside = out_frames[out_masks > 0]
        assert (inside.mean(1) > 200).mean() > 0.9  # the target keeps its own pixels (its edge is blended)
        shift = np.nonzero(out_masks[-1].any(0))[0].mean() - np.nonzero(out_masks[0].any(0))[0].mean()
        assert abs(shift) > 4  # and its own motion across the clip
        # Far from the target, the background is the other scene with its grey object painted out.
        far = cv2.dilate(out_masks[0], np.ones((5, 5), np.uint8)) == 0
        assert (np.abs(out_frames[0][far] - 128).max(1) > 1).mean() > 0.9


def test_prompt_priors_are_boxes_around_the_object_or_strokes_inside_it(tmp_path):
    import numpy as np

    from segmentation.data import JointSamples, Sequence, prompt_prior

    mask = np.zeros((64, 96), np.uint8)
    mask[20:44, 30:66] = 1
    mask[30:34, 40:50] = 0  # a hole: a box covers it, a stroke never paints outside the object
    rng = np.random.default_rng(0)
    boxes = strokes = 0
    for _ in range(40):
        prior = prompt_prior(mask, rng)
        ys, xs = np.nonzero(prior)
        if prior[mask == 0].any():  # a box: a filled rectangle about the object's
            boxes += 1
            assert prior[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
            assert abs(ys.min() - 20) <= 3 and abs(xs.max() - 65) <= 4
        else:
            strokes += 1
            assert 0 < prior.sum() < mask.sum()
    assert boxes > strokes > 0
    frames = np.random.default_rng(1).integers(0, 255, (5, 64, 96, 3)).astype(np.uint8)
    samples = JointSamples([Sequence("s", frames, np.repeat(mask[None], 5, 0), tmp_path, tmp_path)], (96, 64),
                           prompts=1.0)  # fmt: skip
    sample = samples.sample()
    assert (sample["frames"] == sample["frames"][-1:]).all()  # still frames behind a prompt, as the product runs


def test_a_run_stops_for_the_sitting_and_carries_on_from_its_exported_weights(tmp_path):
    davis_layout(tmp_path, "alpha", 1)
    davis_layout(tmp_path, "beta", 2)
    config = TrainConfig(
        data=[str(tmp_path / "data")], out=str(tmp_path / "ck"), val=["beta"], temporal_iters=0, joint_iters=4,
        batch=2, crop=(64, 64), checkpoint_every=10, export=str(tmp_path / "run.pt"),
        stop_after=1e-9,  # this sitting ends after its first iteration, with a checkpoint and the export
    )  # fmt: skip
    train(config, device="cpu")
    _, meta = load_model(tmp_path / "run.pt")
    assert (meta["stage"], meta["iteration"], meta["stopped_early"]) == ("joint", 1, True)
    assert [h["iteration"] for h in meta["history"]] == [1] and meta["seconds"] > 0

    # Another sitting, elsewhere: only the exported file travels. It carries on at iteration 2 with the model it
    # left, and its history and hours add up.
    config.out, config.stop_after = str(tmp_path / "elsewhere"), 0.0
    train(config, device="cpu", resume_from=str(tmp_path / "run.pt"))
    _, carried = load_model(tmp_path / "run.pt")
    assert (carried["iteration"], carried["stopped_early"]) == (4, False)
    assert [h["iteration"] for h in carried["history"]] == [1, 4]
    assert carried["warm_from"] == 1 and carried["seconds"] > meta["seconds"]
    assert carried["history"][-1]["val"]["sequences"][0]["sequence"] == "beta"

    # A file with no run in it (the shipped weights, say) is refused in words.
    save_weights(load_model(tmp_path / "run.pt")[0], tmp_path / "plain.pt", {"trained": "elsewhere"})
    with pytest.raises(InputError, match="no joint-stage training run"):
        train(config, device="cpu", resume_from=str(tmp_path / "plain.pt"))


def test_samples_drawn_by_error_favour_the_sequences_the_model_gets_wrong(tmp_path):
    import numpy as np

    from segmentation.data import JointSamples, Sequence

    mask = np.zeros((5, 64, 96), np.uint8)
    mask[:, 20:44, 30:66] = 1
    frames = np.random.default_rng(1).integers(0, 255, (5, 64, 96, 3)).astype(np.uint8)
    sequences = [Sequence(name, frames, mask, tmp_path, tmp_path) for name in ("easy", "hard")]

    def drawn(by_error):
        samples = JointSamples(sequences, (64, 64), seed=0, by_error=by_error)
        for _ in range(30):  # what the training step reports: the model misses "hard", not "easy"
            samples.learn(np.array([0, 1]), np.array([0.02, 0.6]))
        return np.bincount([samples.sample()["sequence"] for _ in range(400)], minlength=2)

    uniform, weighted = drawn(0.0), drawn(0.8)
    assert abs(uniform[1] - 200) < 40  # a uniform draw ignores the errors
    assert weighted[1] > 0.8 * 400  # 0.2 x 0.5 + 0.8 x 0.6 / 0.62 (0.87) of the samples come from "hard"

    # A run carried on takes up its recorded errors by name; a sequence new to it starts at their mean, not at 0.5.
    samples = JointSamples([*sequences, Sequence("new", frames, mask, tmp_path, tmp_path)], (64, 64), by_error=1.0)
    assert samples.recall({"easy": 0.02, "hard": 0.3, "gone": 0.9}) == 2
    assert samples.error.tolist() == pytest.approx([0.02, 0.3, 0.16])


def test_a_run_with_figures_and_draws_by_error_trains(tmp_path):
    davis_layout(tmp_path, "alpha", 1)
    config = TrainConfig(
        data=[str(tmp_path / "data")], out=str(tmp_path / "ck"), temporal_iters=0, joint_iters=2, batch=2,
        crop=(64, 64), figures=1, riders=1, by_error=0.5, export=str(tmp_path / "w.pt"),
    )  # fmt: skip
    train(config, device="cpu")
    for name in ("figure0", "rider0"):
        assert len(list((tmp_path / "ck" / "synthetic" / name / "masks").glob("*.png"))) == 40
    _, meta = load_model(tmp_path / "w.pt")
    assert meta["iteration"] == 2 and meta["config"]["figures"] == 1 and math.isfinite(meta["history"][-1]["loss"])
    errors = meta["history"][-1]["error"]  # each sequence's running 1 - Dice, which the draws follow
    assert set(errors) == {"alpha", "figure0", "rider0"} and all(0 <= e <= 1 for e in errors.values())

    # Carried on, the run takes up the errors it recorded instead of starting the draws uniform (0.5) again. Each
    # sample moves its sequence's running mean a tenth of the way to its Dice error, and one iteration of a batch
    # of 2 may draw a sequence twice: a recorded 0.95 stays above 0.95 x 0.9^2 (0.77); from 0.5 it reaches 0.6 at most.
    meta["history"][-1]["error"] = {"alpha": 0.95, "figure0": 0.95, "rider0": 0.95}
    model, _ = load_model(tmp_path / "w.pt")
    save_weights(model, tmp_path / "w.pt", meta)
    config.joint_iters, config.out = 3, str(tmp_path / "ck2")
    train(config, device="cpu", resume_from=str(tmp_path / "w.pt"))
    _, meta = load_model(tmp_path / "w.pt")
    assert meta["iteration"] == 3 and min(meta["history"][-1]["error"].values()) > 0.95 * 0.9**config.batch


def test_sequences_of_one_name_in_two_data_folders_are_refused(tmp_path):
    davis_layout(tmp_path, "alpha", 1)
    shutil.copytree(tmp_path / "data", tmp_path / "more")  # --val and the recorded errors would not know which
    config = TrainConfig(data=[str(tmp_path / "data"), str(tmp_path / "more")], out=str(tmp_path / "ck"))
    with pytest.raises(InputError, match=f"two sequences named alpha \\({tmp_path / 'data' / 'alpha'}, "):
        train(config, device="cpu")
    # An earlier run's synthetic clips given as data beside --synthetic: refused before any clip is made.
    shutil.copytree(tmp_path / "data" / "alpha", tmp_path / "old" / "synth0")
    config = TrainConfig(data=[str(tmp_path / "data"), str(tmp_path / "old")], out=str(tmp_path / "ck"), synthetic=1)
    with pytest.raises(InputError, match="two sequences named synth0"):
        train(config, device="cpu")
    assert not (tmp_path / "ck").exists()


def test_still_samples_stand_still_with_a_deformed_mask_of_their_own_frame(tmp_path):
    import numpy as np

    from segmentation.data import JointSamples, Sequence
    from segmentation.evaluate import jaccard

    masks = np.zeros((5, 64, 96), np.uint8)
    for t in range(5):
        cv2.ellipse(masks[t], (25 + 12 * t, 32), (15, 12), 0, 0, 360, 1, -1)  # moves 12 pixels a frame
    frames = np.random.default_rng(1).integers(0, 255, (5, 64, 96, 3)).astype(np.uint8)
    clip = [Sequence("s", frames, masks, tmp_path, tmp_path)]
    samples = JointSamples(clip, (96, 64), still=1.0)
    for _ in range(10):
        sample = samples.sample()
        assert (sample["frames"] == sample["frames"][-1:]).all()
        prior, mask = sample["previous_mask"][0] > 0, sample["mask"][0] > 0
        ys, xs = np.nonzero(prior)
        assert not prior[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()  # not a box (prompt_prior's)
        assert not (prior == mask).all()  # nor the answer itself
    moving = JointSamples(clip, (96, 64), seed=0)
    sample = moving.sample()
    assert not (sample["frames"] == sample["frames"][-1:]).all()
    still = JointSamples(clip, (96, 64), seed=0, still=1.0)
    ious = [jaccard(s["previous_mask"][0] > 0, s["mask"][0] > 0) for s in (still.sample() for _ in range(20))]
    assert np.mean(ious) > 0.5  # a deformed copy of this frame's mask, not of an earlier frame's


def test_validation_after_online_training_leaves_the_trained_model_alone(tmp_path):
    from segmentation.data import load_sequence
    from segmentation.train import validate

    davis_layout(tmp_path, "alpha", 1)
    sequence = load_sequence(tmp_path / "data" / "alpha", (96, 64))
    model = load_model()[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    little, more = (validate(model, [sequence], torch.device("cpu"), (96, 64), online=n) for n in (1, 8))
    assert little["JF"] != more["JF"]  # online training changed the masks...
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # ...on a copy of the decoder
    assert model.training  # and validation hands the model back in the mode it found it


def test_stcnn_average_mixes_two_weights_files_tensor_by_tensor(tmp_path, capsys):
    from segmentation.cli import main
    from segmentation.model import STCNN

    torch.manual_seed(0)
    first, second = STCNN(), STCNN()  # two different random initialisations
    for module in second.modules():  # and BatchNorm statistics as training would leave them
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.mul_(2)
            module.num_batches_tracked += 5
    save_weights(first, tmp_path / "a.pt", {"trained": "a"})
    save_weights(second, tmp_path / "b.pt", {"trained": "b", "iteration": 7})
    a, b = load_model(tmp_path / "a.pt")[0].state_dict(), load_model(tmp_path / "b.pt")[0].state_dict()
    assert main(["average", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--share", "0.25",
                 "-o", str(tmp_path / "mix.pt")]) == 0  # fmt: skip
    mixed, meta = load_model(tmp_path / "mix.pt")
    name = "decoder.top.fuse.0.weight"
    expected = 0.75 * a[name] + 0.25 * b[name]
    assert not torch.allclose(a[name], b[name])
    assert torch.allclose(mixed.state_dict()[name], expected, atol=2e-3)  # stored in fp16
    assert meta["iteration"] == 7 and meta["averaged_with"] == {"weights": str(tmp_path / "a.pt"), "share": 0.75}
    assert meta["last_validation"] is None  # a score of b's would not be the average's
    states = mixed.state_dict()  # BatchNorm statistics are averaged too; its counter is b's
    norm = next(k for k in a if k.endswith("running_var") and not torch.allclose(a[k], b[k]))
    assert torch.allclose(states[norm], 0.75 * a[norm] + 0.25 * b[norm], rtol=2e-3)
    counter = next(k for k in a if k.endswith("num_batches_tracked"))
    assert torch.equal(states[counter], b[counter])

    capsys.readouterr()
    assert main(["average", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--share", "1.5", "-o",
                 str(tmp_path / "bad.pt")]) == 2  # fmt: skip
    assert "between 0 and 1" in capsys.readouterr().err and not (tmp_path / "bad.pt").exists()
    assert main(["average", str(tmp_path / "none.pt"), str(tmp_path / "b.pt"), "-o", str(tmp_path / "bad.pt")]) == 2
    error = capsys.readouterr().err  # the user named the file: no hint about the shipped weights' place
    assert f"weights not found: {tmp_path / 'none.pt'}\n" in error and not (tmp_path / "bad.pt").exists()
