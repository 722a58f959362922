"""ssnets against its PyTorch peers on the same data: wall time per epoch and val mIoU, side by side.

    pip install -e ".[peer]"      # torch, torchvision, segmentation-models-pytorch (never a runtime dependency)
    python scripts/peer_bench.py --data-root /data/eyes --image-size 224 --epochs 12 --batch-size 8
    python scripts/peer_bench.py --image-size 128 --epochs 3     # no --data-root: a synthetic iris set

For each model the same training split, batch size, epochs, optimizer (Adam, the
given lr, cosine decay per epoch), loss (cross-entropy) and flips + 90-degree
rotations (--augmentation flips; or none) are used by both sides:
- ssnets: `python -m ssnets.run data=folder ...` in a subprocess, logged with
  logger=csv; epoch times are the differences of the epochs' log times (the first
  epoch, which compiles, is shown apart).
- PyTorch: segmentation_models_pytorch's Unet("mobilenet_v2") for mobilenet_unet,
  and FCN8 / FastFCN8 written here as ssnets builds them (VGG16-BN encoder, fc6 7x7 and
  fc7 1x1 with 4096 filters, score layers and bilinear-initialised transposed convs;
  FastFCN8 makes every k x k conv depthwise-separable), in eager mode.
val mIoU for both is ssnets' confusion-matrix mIoU over the whole val split.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Before anything imports TensorFlow: torchvision (under segmentation_models_pytorch) loads triton, whose
# import segfaults a process that has TensorFlow's libraries loaded already.
import segmentation_models_pytorch as smp
import torch
from torch import nn

from ssnets.common.tables import markdown_table
from ssnets.data.folder import load_folder
from ssnets.data.iris import ensure_dataset
from ssnets.data.types import MaskSpec, Split
from ssnets.task.metrics import confusion_matrix, segmentation_metrics

IMAGENET_RGB_MEAN = (123.68, 116.779, 103.939)
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def conv(in_channels: int, out_channels: int, kernel: int, separable: bool) -> nn.Module:
    """Conv2d 'same', or (ds) a depthwise conv without bias then a pointwise conv, as Keras' SeparableConv2D."""
    if separable and kernel > 1:
        return nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel, padding="same", groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1),
        )
    return nn.Conv2d(in_channels, out_channels, kernel, padding="same")


def bilinear_transposed_conv(channels: int, kernel: int, stride: int) -> nn.ConvTranspose2d:
    layer = nn.ConvTranspose2d(channels, channels, kernel, stride=stride, bias=False)
    factor = (kernel + 1) // 2
    centre = factor - 1 if kernel % 2 == 1 else factor - 0.5
    filt = 1 - np.abs(np.arange(kernel) - centre) / factor
    weight = np.zeros((channels, channels, kernel, kernel), np.float32)
    for channel in range(channels):
        weight[channel, channel] = np.outer(filt, filt)
    layer.weight.data.copy_(torch.from_numpy(weight))
    return layer


def centre_crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    dh, dw = x.shape[2] - like.shape[2], x.shape[3] - like.shape[3]
    return x[:, :, dh // 2 : dh // 2 + like.shape[2], dw // 2 : dw // 2 + like.shape[3]]


class FCN8(nn.Module):
    """ssnets.models.fcn8 in PyTorch (conv_type conv, or ds = FastFCN8)."""

    def __init__(self, num_classes: int, separable: bool):
        super().__init__()
        blocks, channels = [], 3
        for filters, convs in VGG16_BLOCKS:
            layers = []
            for _ in range(convs):
                layers += [conv(channels, filters, 3, separable), nn.BatchNorm2d(filters, momentum=0.1), nn.ReLU()]
                channels = filters
            blocks.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Sequential(
            conv(512, 4096, 7, separable),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Conv2d(4096, 4096, 1),
            nn.ReLU(),
            nn.Dropout(0.5),
        )
        self.score_fr, self.score_pool4, self.score_pool3 = (nn.Conv2d(c, num_classes, 1) for c in (4096, 512, 256))
        self.upscore2 = bilinear_transposed_conv(num_classes, 4, 2)
        self.upscore_pool4 = bilinear_transposed_conv(num_classes, 4, 2)
        self.upscore8 = bilinear_transposed_conv(num_classes, 16, 8)
        self.register_buffer("mean", torch.tensor(IMAGENET_RGB_MEAN).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, pools = images - self.mean, []
        for block in self.blocks:
            x = block(x)
            pools.append(x)
        score_pool4, score_pool3 = self.score_pool4(pools[3]), self.score_pool3(pools[2])
        fused = centre_crop(self.upscore2(self.score_fr(self.fc(x))), score_pool4) + score_pool4
        fused = centre_crop(self.upscore_pool4(fused), score_pool3) + score_pool3
        return centre_crop(self.upscore8(fused), images)


class ScaledUnet(nn.Module):
    """smp's Unet on a MobileNetV2 encoder, fed raw pixels scaled to [-1, 1] as ssnets' mobilenet preprocessing."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.unet = smp.Unet("mobilenet_v2", encoder_weights=None, classes=num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.unet(images / 127.5 - 1.0)


def torch_model(name: str, num_classes: int) -> nn.Module:
    if name == "mobilenet_unet":
        return ScaledUnet(num_classes)
    if name in ("fcn8", "fast_fcn8"):
        return FCN8(num_classes, separable=name == "fast_fcn8")
    raise SystemExit(f"--models takes mobilenet_unet, fcn8 and fast_fcn8, not {name}.")


def flips_and_rotations(rng: np.random.Generator, images: np.ndarray, masks: np.ndarray):
    """Per sample, one of the eight 90-degree rotations and mirrorings (N,H,W,C and N,H,W arrays)."""
    images, masks = images.copy(), masks.copy()
    for i in range(len(images)):
        if rng.random() < 0.5:
            images[i], masks[i] = images[i][:, ::-1], masks[i][:, ::-1]
        if rng.random() < 0.5:
            images[i], masks[i] = images[i][::-1], masks[i][::-1]
        if rng.random() < 0.5:
            images[i], masks[i] = images[i].transpose(1, 0, 2), masks[i].T
    return images, masks


def torch_run(name: str, train: Split, val: Split, args: argparse.Namespace) -> dict:
    """Train and validate every epoch; epoch seconds (validation included) and the last val mIoU."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = torch_model(name, args.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * e / args.epochs)))
    loss_fn = nn.CrossEntropyLoss()
    seconds, mious = [], []
    for _ in range(args.epochs):
        started = time.perf_counter()
        model.train()
        order = rng.permutation(len(train))
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):  # whole batches, as ssnets
            batch = order[start : start + args.batch_size]
            images, masks = train.images[batch], train.masks[batch]
            if args.augmentation == "flips":
                images, masks = flips_and_rotations(rng, images, masks)
            x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
            loss = loss_fn(model(x), torch.from_numpy(np.ascontiguousarray(masks, dtype=np.int64)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        mious.append(torch_miou(model, val, args))
        seconds.append(time.perf_counter() - started)
    return {"params": sum(p.numel() for p in model.parameters()), "seconds": seconds, "val_miou": mious}


@torch.no_grad()
def torch_miou(model: nn.Module, val: Split, args: argparse.Namespace) -> float:
    model.eval()
    predictions = []
    for start in range(0, len(val), args.batch_size):
        x = torch.from_numpy(val.images[start : start + args.batch_size].transpose(0, 3, 1, 2).astype(np.float32))
        predictions.append(model(x).argmax(1).numpy())
    matrix = confusion_matrix(val.masks, np.concatenate(predictions), args.num_classes)
    return segmentation_metrics(matrix, [f"class_{k}" for k in range(args.num_classes)])["miou"]


def ssnets_run(name: str, root: Path, args: argparse.Namespace, work: Path) -> dict:
    overrides = [
        "data=folder",
        f"data.root={root}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"data.num_classes={args.num_classes}",
        f"data.class_names=[{','.join(f'c{k}' for k in range(args.num_classes))}]",
        f"model={name}",
        f"trainer.epochs={args.epochs}",
        "optimizer=adam",
        f"optimizer.lr={args.lr}",
        "scheduler=cosine",
        "loss=ce",
        "trainer.l2=0",
        "callbacks.early_stopping=null",
        "augmentation=real",
        "augmentation.zoom=0",
        "augmentation.brightness=0",
        "augmentation.contrast=0",
        f"augmentation.strength={1.0 if args.augmentation == 'flips' else 0.0}",
        "augmentation.horizontal_flip=" + str(args.augmentation == "flips").lower(),
        "augmentation.vertical_flip=" + str(args.augmentation == "flips").lower(),
        "augmentation.rotate90=" + str(args.augmentation == "flips").lower(),
        "logger=csv",
        f"logger.root={work / 'logs'}",
        f"logger.experiment_name={name}",
        "logger.log_model=false",
        "trainer.verbose=2",
        f"hydra.run.dir={work / name}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "ssnets.run", *overrides], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"ssnets.run failed for {name}:\n{result.stderr[-3000:]}")
    (run_dir,) = (work / "logs" / name).iterdir()
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    run = json.loads((run_dir / "run.json").read_text())
    params = {row["key"]: row["value"] for row in csv.DictReader(open(run_dir / "params.csv"))}
    logged = {int(row["step"]): int(row["time"]) for row in rows if row["name"] == "val_miou"}
    ends = [logged[epoch] for epoch in range(args.epochs)]
    seconds = [(end - begin) / 1000 for begin, end in itertools.pairwise([run["start_time"], *ends])]
    mious = [float(row["value"]) for row in rows if row["name"] == "val_miou" and int(row["step"]) < args.epochs]
    return {"params": int(params["total_params"]), "seconds": seconds, "val_miou": mious}


def dataset(args: argparse.Namespace, work: Path) -> Path:
    if args.data_root:
        return Path(args.data_root)
    return ensure_dataset(work / "iris", args.image_size, args.num_train, args.num_val, 0, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="root/{train,val}/{img,mask}/ (default: a synthetic iris set)")
    parser.add_argument("--models", nargs="+", default=["mobilenet_unet", "fast_fcn8"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--augmentation", choices=("flips", "none"), default="flips")
    parser.add_argument("--num-train", type=int, default=96, help="synthetic set only")
    parser.add_argument("--num-val", type=int, default=32, help="synthetic set only")
    parser.add_argument("--out", type=Path, help="also write the table and every epoch's figures here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())

    with tempfile.TemporaryDirectory(prefix="peer-bench-") as scratch:
        work = Path(scratch)
        root = dataset(args, work)
        spec = MaskSpec(args.num_classes)
        splits = load_folder(root, args.image_size, 3, spec)
        results = {}
        for name in args.models:
            results[name] = {
                "ssnets": ssnets_run(name, root, args, work),
                "torch": torch_run(name, *(splits[s] for s in ("train", "val")), args),
            }
            print(f"{name}: {json.dumps(results[name])}", flush=True)

    headings = [
        "model",
        "framework",
        "params",
        "first epoch (s)",
        "epoch (s), median of the rest",
        "val mIoU (last)",
        "best",
    ]
    rows = []
    for name, sides in results.items():
        for side, figures in sides.items():
            rest = figures["seconds"][1:] or figures["seconds"]
            rows.append(
                [
                    name,
                    side,
                    f"{figures['params']:,}",
                    f"{figures['seconds'][0]:.1f}",
                    f"{statistics.median(rest):.1f}",
                    f"{figures['val_miou'][-1]:.4f}",
                    f"{max(figures['val_miou']):.4f}",
                ]
            )
    table = markdown_table(headings, rows, right_aligned=[False, False, True, True, True, True, True])
    print(
        f"\n{len(splits['train'])} training images, {len(splits['val'])} val, {args.image_size} px, "
        f"batch {args.batch_size}, {args.epochs} epochs, augmentation {args.augmentation}, "
        f"{os.cpu_count()} CPU threads\n"
    )
    print(table, end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "peer_bench.md").write_text(table)
        (args.out / "peer_bench.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
