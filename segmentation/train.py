"""Offline training: temporal pretraining without labels (adversarial), then the joint stage on masks.

Checkpoints (`last.pt`) hold the model, optimisers, stage and iteration, so `--resume` carries on where a run
stopped; each checkpoint is scored on the validation sequences (J&F without online training). The exported fp16
weights are kept up to date at every checkpoint and record the run's place (stage, iteration, hours, history), so a
run longer than one sitting can carry on from that small file alone (`--resume-from`), on another machine too.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import __version__
from .backbone import load_imagenet
from .data import JointSamples, Sequence, first_frame_size, load_sequence, sequence_dirs
from .errors import InputError
from .inference import Segmenter, model_size
from .model import DELTA, STCNN, FrameDiscriminator, dice_error, normalise, segmentation_loss
from .runtime import native_bf16, pick_device
from .weights import load_model, save_weights


@dataclass
class TrainConfig:
    data: list[str]
    out: str = "checkpoints"
    val: list[str] = field(default_factory=list)
    temporal_iters: int = 1500
    joint_iters: int = 6000
    batch: int = 4
    crop: tuple[int, int] = (320, 224)
    lr: float = 3e-4
    backbone_lr: float = 6e-5
    checkpoint_every: int = 500
    max_hours: float = 0.0  # the whole run's hours, over every sitting (0: no limit); the schedule decays by them
    stop_after: float = 0.0  # hours: end this sitting with a checkpoint (the run carries on later); 0: no limit
    seed: int = 0
    export: str = ""  # where to keep the fp16 weights (written at every checkpoint and at the end)
    # Synthetic sequences (textured shapes, segmentation.synthetic) added to the training data.
    synthetic: int = 0
    distractors: float = 0.0  # share of joint samples with another sequence's object pasted in (data.py)
    new_backgrounds: float = 0.0  # share of joint samples with the target moved onto another clip (data.py)
    prompts: float = 0.0  # share of joint samples whose prior is a box or strokes on a still frame (data.py)
    figures: int = 0  # synthetic sequences of articulated figures with thin limbs (segmentation.synthetic)
    riders: int = 0  # synthetic figures carrying a rider that is not the object: a part of a moving whole
    by_error: float = 0.0  # share of joint samples whose sequence is drawn by the model's error on it (data.py)
    still: float = 0.0  # share of the other joint samples on a still frame with a deformed mask prior (data.py)
    init: str = ""  # start from these weights (a trained model carried on with new data or settings)
    val_online: int = 0  # iterations of online training on each validation sequence's first mask (validate)


def to_batch(batch: dict[str, np.ndarray], device: torch.device) -> tuple[torch.Tensor, ...]:
    frames = normalise(torch.from_numpy(batch["frames"]).to(device))  # (N, DELTA + 1, 3, h, w)
    n, _, _, h, w = frames.shape
    previous = frames[:, :DELTA].reshape(n, 3 * DELTA, h, w)
    frame = frames[:, DELTA]
    return (
        previous,
        frame,
        torch.from_numpy(batch["previous_mask"]).to(device),
        torch.from_numpy(batch["mask"]).to(device),
    )


def validate(
    model: STCNN, sequences: list[Sequence], device: torch.device, size: tuple[int, int], online: int = 0
) -> dict:
    """J&F on full-size ground truth, propagating from the first mask. With `online` iterations, as the product
    runs (its default options, the gate on; online training on the first mask, a copy of the decoder); with none,
    as training always validated (no gate). The weights that validate best without online training need not be
    the ones that learn a video best from its first mask, which is what the product does."""
    was_training = model.training
    model.eval()
    try:
        return _validate(model, sequences, device, size, online)
    finally:  # a failed validation too hands the model back as it found it: training carries on after one
        model.train(was_training)


def _validate(model, sequences, device, size, online) -> dict:
    import cv2

    from .evaluate import evaluate_masks
    from .masks import read_mask
    from .online import OnlineBudget
    from .options import SegmentOptions
    from .session import open_session

    # PyTorch: the weights change between validations, and converting them for OpenVINO each time costs more.
    segmenter = Segmenter(model, device, size, runtime="torch")
    rows = []
    for seq in sequences:
        frame_files = sorted(seq.frame_dir.iterdir())
        gts, preds = [], []
        for i, frame_file in enumerate(frame_files):
            frame = cv2.cvtColor(cv2.imread(str(frame_file)), cv2.COLOR_BGR2RGB)
            gt = read_mask(seq.mask_dir / (frame_file.stem + ".png"))
            if i == 0:
                segmenter.reset()
                if online:
                    example = (cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
                               cv2.resize(gt, size, interpolation=cv2.INTER_NEAREST))  # fmt: skip
                    options = SegmentOptions(runtime="torch")
                    budget = OnlineBudget(3600, online)
                    session = open_session(model.with_own_decoder(), device, size, options, [example], budget)
                    segmenter = session.segmenter
            preds.append(segmenter.step(frame, gt if i == 0 else None))
            gts.append(gt)
        table = evaluate_masks(gts, preds)
        j, f = float(table["J"].mean()), float(table["F"].mean())
        rows.append({"sequence": seq.name, "J": j, "F": f, "JF": (j + f) / 2})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("J", "F", "JF")}
    return {"sequences": rows, **mean}


class Trainer:
    def __init__(self, config: TrainConfig, device: torch.device):
        self.config = config
        self.device = device
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        self.model = STCNN().to(device)
        if config.init:  # a trained model, carried on
            self.model.load_state_dict(load_model(config.init)[0].state_dict())
        else:
            load_imagenet(self.model.backbone)
        self.discriminator = FrameDiscriminator().to(device)
        self.opt_temporal = torch.optim.Adam(self.model.temporal.parameters(), 1e-3, betas=(0.5, 0.999))
        self.opt_discriminator = torch.optim.Adam(self.discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
        self.opt_joint = torch.optim.AdamW(
            [
                {"params": self.model.backbone.parameters(), "lr": config.backbone_lr},
                {"params": self.model.temporal.parameters(), "lr": config.lr / 3},
                {"params": self.model.decoder.parameters(), "lr": config.lr},
            ],
            weight_decay=1e-4,
        )
        self.base_lrs = [g["lr"] for g in self.opt_joint.param_groups]
        self.bf16 = native_bf16(device)  # the joint stage's forward pass; weights, loss and updates stay fp32
        self.stage, self.iteration = "temporal", 0
        self.warm_from = 0  # the joint iteration its optimiser started at: the warm-up counts from there
        self.history: list[dict] = []
        self.earlier_seconds = 0.0  # trained in earlier sittings of this run
        self.started = time.time()

    def seconds(self) -> float:
        """Hours of this run so far, in seconds, over every sitting."""
        return self.earlier_seconds + time.time() - self.started

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def save(self) -> None:
        blob = {
            "model": self.model.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_temporal": self.opt_temporal.state_dict(),
            "opt_discriminator": self.opt_discriminator.state_dict(),
            "opt_joint": self.opt_joint.state_dict(),
            **self.place(),
        }
        torch.save(blob, self.out / "last.tmp")
        (self.out / "last.tmp").replace(self.out / "last.pt")

    def place(self) -> dict:
        """Where the run stands: what a checkpoint and the exported weights record to carry it on."""
        return {
            "stage": self.stage,
            "iteration": self.iteration,
            "warm_from": self.warm_from,
            "seconds": self.seconds(),
            "history": self.history,
            "config": asdict(self.config),
        }

    def carry_on(self, place: dict) -> None:
        self.stage, self.iteration, self.history = place["stage"], place["iteration"], place["history"]
        self.warm_from = place.get("warm_from", 0)
        self.earlier_seconds = place.get("seconds", 0.0)
        self.started = time.time()

    def resume(self) -> None:
        blob = torch.load(self.out / "last.pt", map_location=self.device, weights_only=False)
        self.model.load_state_dict(blob["model"])
        self.discriminator.load_state_dict(blob["discriminator"])
        self.opt_temporal.load_state_dict(blob["opt_temporal"])
        self.opt_discriminator.load_state_dict(blob["opt_discriminator"])
        self.opt_joint.load_state_dict(blob["opt_joint"])
        self.carry_on(blob)

    def resume_from(self, path: str) -> None:
        """Carries a run on from its exported weights: the model and the run's place in its schedule. The
        optimisers start again, so the learning rate warms up again from here."""
        model, meta = load_model(path, self.device)
        if meta.get("stage") != "joint" or "history" not in meta:
            raise InputError(f"{path} records no joint-stage training run to carry on (export one with --export)")
        self.model.load_state_dict(model.state_dict())
        self.carry_on(meta)
        self.warm_from = self.iteration

    def out_of_time(self) -> bool:
        """The run's hours are spent, or this sitting's."""
        sitting = time.time() - self.started
        return (self.config.max_hours > 0 and self.seconds() > self.config.max_hours * 3600) or (
            self.config.stop_after > 0 and sitting > self.config.stop_after * 3600
        )

    # -- stages --------------------------------------------------------------------------------------------------
    def temporal_step(self, samples: JointSamples) -> dict:
        previous, frame, _, _ = to_batch(samples.batch(self.config.batch * 2), self.device)
        predicted, _ = self.model.temporal(previous)
        real = self.discriminator(previous, frame)
        fake = self.discriminator(previous, predicted.detach())
        loss_d = F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        self.opt_discriminator.zero_grad()
        loss_d.backward()
        self.opt_discriminator.step()
        fooled = self.discriminator(previous, predicted)
        mse = F.mse_loss(predicted, frame)
        loss_g = mse + 0.01 * F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        self.opt_temporal.zero_grad()
        loss_g.backward()
        self.opt_temporal.step()
        return {"mse": mse.item(), "d": loss_d.item()}

    def joint_step(self, samples: JointSamples) -> dict:
        progress = self.iteration / max(1, self.config.joint_iters)
        if self.config.max_hours > 0:  # with a time limit, the schedule also decays by the clock
            progress = min(1.0, max(progress, self.seconds() / (self.config.max_hours * 3600)))
        warm = min(1.0, (self.iteration - self.warm_from + 1) / 200)
        for group, base in zip(self.opt_joint.param_groups, self.base_lrs):  # warm-up, then cosine decay
            group["lr"] = base * warm * 0.5 * (1 + math.cos(math.pi * progress))
        batch = samples.batch(self.config.batch)
        previous, frame, previous_mask, mask = to_batch(batch, self.device)
        sequences = batch["sequence"]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            features, temporal, predicted = self.model.encode(frame, previous)
            logits = self.model.decode(features, temporal, previous_mask)
        seg = segmentation_loss([logit.float() for logit in logits], mask)
        loss = seg + 0.1 * F.mse_loss(predicted.float(), frame)  # keeps the temporal branch a frame predictor
        self.opt_joint.zero_grad()
        loss.backward()
        self.opt_joint.step()
        if samples.by_error:  # an absent object's Dice says nothing of how well it was found
            present = (mask.flatten(1).sum(1) > 0).cpu().numpy()
            errors = dice_error(logits[-1].detach().float(), mask).cpu().numpy()
            samples.learn(sequences[present], errors[present])
        return {"loss": seg.item()}

    def run(self, train: list[Sequence], val: list[Sequence]) -> None:
        size = (train[0].frames.shape[2], train[0].frames.shape[1])
        samples = JointSamples(
            train,
            self.config.crop,
            self.config.seed + self.iteration,
            self.config.distractors,
            self.config.new_backgrounds,
            self.config.prompts,
            self.config.by_error,
            self.config.still,
        )
        recorded = next((h["error"] for h in reversed(self.history) if "error" in h), {})
        if samples.by_error and recorded:  # a run carried on keeps drawing where the model erred
            recalled = samples.recall(recorded)
            tqdm.write(f"draws by error: {recalled} sequences' errors taken up, {len(train) - recalled} new")
        # The temporal branch learns to predict the next frame: still clips (prompts, `still`) would teach it to copy.
        motion = JointSamples(
            train, self.config.crop, self.config.seed + self.iteration, self.config.distractors,
            self.config.new_backgrounds,
        )  # fmt: skip
        self.model.train()
        for stage, total, step, drawn_from in (
            ("temporal", self.config.temporal_iters, self.temporal_step, motion),
            ("joint", self.config.joint_iters, self.joint_step, samples),
        ):
            if self.stage == "joint" and stage == "temporal":
                continue
            if self.stage != stage:
                self.stage, self.iteration = stage, 0
            bar = tqdm(
                total=total, initial=self.iteration, desc=f"train {stage}", unit="it", dynamic_ncols=True
            )
            running: dict[str, float] = {}
            while self.iteration < total:
                stats = step(drawn_from)
                running = {k: 0.98 * running.get(k, v) + 0.02 * v for k, v in stats.items()}
                self.iteration += 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in running.items()})
                last = self.iteration == total or self.out_of_time()
                if self.iteration % self.config.checkpoint_every == 0 or last:
                    record = {"stage": stage, "iteration": self.iteration, "seconds": self.seconds()}
                    record.update(running)
                    if stage == "joint" and samples.by_error:  # where the draws by error go
                        record["error"] = {s.name: round(float(e), 4) for s, e in zip(train, samples.error)}
                    if stage == "joint" and val:
                        try:
                            record["val"] = validate(self.model, val, self.device, size, self.config.val_online)
                            tqdm.write(
                                f"[{stage} {self.iteration}] validation J&F {100 * record['val']['JF']:.1f}"
                            )
                        except Exception as error:  # a failed score must not cost the training run
                            tqdm.write(f"[{stage} {self.iteration}] validation failed: {error!r}")
                    self.history.append(record)
                    self.save()
                    (self.out / "history.json").write_text(json.dumps(self.history, indent=1))
                    self.export()
                if self.out_of_time():
                    bar.close()
                    return
            bar.close()

    def export(self) -> None:
        if not self.config.export:
            return
        done = self.stage == "joint" and self.iteration >= self.config.joint_iters
        meta = {
            "version": __version__,
            "trained": time.strftime("%Y-%m-%d"),
            "stopped_early": not done,
            "precision": "bf16" if self.bf16 else "fp32",  # of the joint stage's forward pass
            "last_validation": next((h["val"] for h in reversed(self.history) if "val" in h), None),
            **self.place(),
        }
        save_weights(self.model, self.config.export, meta)


# Synthetic clip kinds (`stcnn train --synthetic / --figures / --riders`): name prefix -> first seed, the most
# objects a clip has, and make_clip's options.
SYNTHETIC_KINDS = {
    "synth": (100, 3, {}),  # rigid textured shapes
    "figure": (300, 2, {"figures": True}),  # articulated figures with thin limbs
    "rider": (500, 2, {"figures": True, "riders": True}),  # figures carrying a rider that is not the object
}


def synthetic_dirs(root: Path, count: int, kind: str = "synth") -> list[Path]:
    """Where synthetic_sequences puts its clips: root/<kind><i>."""
    return [root / f"{kind}{i}" for i in range(count)]


def check_names(dirs: list[Path]) -> None:
    """InputError naming the folders where two sequences share a name: --val and the recorded errors go by name."""
    by_name: dict[str, list[Path]] = {}
    for d in dirs:
        by_name.setdefault(d.name, []).append(d)
    for name, found in by_name.items():
        if len(found) > 1:
            raise InputError(
                f"two sequences named {name} ({', '.join(map(str, found))}): rename one or leave one folder out"
            )


def synthetic_sequences(root: Path, count: int, size: tuple[int, int], kind: str = "synth") -> list[Path]:
    """DAVIS-layout synthetic clips: arbitrary textured objects that only the mask says are the target, so the
    model learns to follow the given mask rather than whatever DAVIS makes look salient. Made once, then reused.
    kind: one of SYNTHETIC_KINDS."""
    import shutil

    from .synthetic import make_clip

    seed, most, options = SYNTHETIC_KINDS[kind]
    made = []
    for i, seq in enumerate(synthetic_dirs(root, count, kind)):
        if not (seq / "masks").is_dir():
            clip = make_clip(
                root / "tmp", n_frames=40, size=size, n_objects=1 + i % most, seed=seed + i, as_folder=True, **options
            )
            shutil.copytree(clip.video, seq / "frames", dirs_exist_ok=True)
            shutil.copytree(clip.gt_dir, seq / "masks", dirs_exist_ok=True)
            shutil.rmtree(root / "tmp")
        made.append(seq)
    return made


def train(config: TrainConfig, device: str = "auto", resume: bool = False, resume_from: str = "") -> None:
    """resume: carry on from OUT/last.pt where there is one; resume_from: from a run's exported weights."""
    dev = pick_device(device)
    torch.set_float32_matmul_precision("high")
    dirs = sequence_dirs(config.data)
    synthetic = Path(config.out) / "synthetic"
    counts = {"synth": config.synthetic, "figure": config.figures, "rider": config.riders}
    made = [d for kind, count in counts.items() for d in synthetic_dirs(synthetic, count, kind)]
    check_names(dirs + made)  # before any clip is made
    unknown = set(config.val) - {d.name for d in dirs + made}
    if unknown:
        raise InputError(f"validation sequences not in the data: {', '.join(sorted(unknown))}")
    size = model_size(*first_frame_size(dirs[0]))  # DAVIS: 854x480 -> 448x256
    for kind, count in counts.items():
        dirs += synthetic_sequences(synthetic, count, size, kind)
    train_seqs, val_seqs = [], []
    for d in tqdm(dirs, desc="load data", unit="seq"):
        (val_seqs if d.name in config.val else train_seqs).append(load_sequence(d, size))
    trainer = Trainer(config, dev)
    if resume and (Path(config.out) / "last.pt").is_file():
        trainer.resume()
        tqdm.write(f"resumed at {trainer.stage} iteration {trainer.iteration}")
    elif resume_from:
        trainer.resume_from(resume_from)
        tqdm.write(f"carried on from {resume_from} at {trainer.stage} iteration {trainer.iteration}")
    trainer.run(train_seqs, val_seqs)
