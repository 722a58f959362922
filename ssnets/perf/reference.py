"""The reference figures of PERFORMANCE.md, and which of them a benchmark row is compared with."""

from __future__ import annotations

from typing import Any

# Figures from PERFORMANCE.md, and the configuration each was measured in; a row is compared with the
# entry of its model, device kind, batch size, image size and precision (and backend where given).
# GPU: one H100, PyTorch (the targets: training >= 1.5x, inference >= 1x these).
# CPU: 2 cores, TensorFlow, one training step of batch 2, as images/s (2 / step seconds).
REFERENCE = [
    {
        "model": "fcn8",
        "device": "GPU",
        "batch_size": 32,
        "image_size": 224,
        "precision": "mixed_bfloat16",
        "backend": None,
        "source": "PyTorch eager, H100",
        "train": 1329,
        "inference": 4920,
    },
    {
        "model": "fast_fcn8",
        "device": "GPU",
        "batch_size": 32,
        "image_size": 224,
        "precision": "mixed_bfloat16",
        "backend": None,
        "source": "PyTorch eager, H100",
        "train": 1640,
        "inference": 6206,
    },
    {
        "model": "mobilenet_unet",
        "device": "GPU",
        "batch_size": 32,
        "image_size": 224,
        "precision": "mixed_bfloat16",
        "backend": None,
        "source": "smp 0.6.0, H100",
        "train": 700,
        "inference": 3157,
    },
    {
        "model": "fc_densenet121",
        "device": "GPU",
        "batch_size": 32,
        "image_size": 224,
        "precision": "mixed_bfloat16",
        "backend": None,
        "source": "smp 0.6.0 (U-Net), H100",
        "train": 326,
        "inference": 1693,
    },
    {
        "model": "fcn8",
        "device": "CPU",
        "batch_size": 2,
        "image_size": 64,
        "precision": "float32",
        "backend": "tensorflow",
        "source": "TF, 2 CPU cores",
        "train": 2 / 0.90,
        "inference": None,
    },
    {
        "model": "fast_fcn8",
        "device": "CPU",
        "batch_size": 2,
        "image_size": 64,
        "precision": "float32",
        "backend": "tensorflow",
        "source": "TF, 2 CPU cores",
        "train": 2 / 0.18,
        "inference": None,
    },
    {
        "model": "mobilenet_unet",
        "device": "CPU",
        "batch_size": 2,
        "image_size": 64,
        "precision": "float32",
        "backend": "tensorflow",
        "source": "TF, 2 CPU cores",
        "train": 2 / 0.055,
        "inference": None,
    },
    {
        "model": "fcn8",
        "device": "CPU",
        "batch_size": 2,
        "image_size": 224,
        "precision": "float32",
        "backend": "tensorflow",
        "source": "TF, 2 CPU cores",
        "train": 2 / 2.53,
        "inference": None,
    },
    {
        "model": "fast_fcn8",
        "device": "CPU",
        "batch_size": 2,
        "image_size": 224,
        "precision": "float32",
        "backend": "tensorflow",
        "source": "TF, 2 CPU cores",
        "train": 2 / 0.49,
        "inference": None,
    },
    {
        "model": "mobilenet_unet",
        "device": "CPU",
        "batch_size": 2,
        "image_size": 224,
        "precision": "float32",
        "backend": "tensorflow",
        "source": "TF, 2 CPU cores",
        "train": 2 / 0.22,
        "inference": None,
    },
]


def reference_for(row: dict[str, Any]) -> dict[str, Any] | None:
    device_kind = "GPU" if row["device"].startswith("GPU") else "CPU"
    for entry in REFERENCE:
        if (
            entry["model"] == row["model"]
            and entry["device"] == device_kind
            and (entry["batch_size"], entry["image_size"], entry["precision"])
            == (row["batch_size"], row["image_size"], row["precision"])
            and entry["backend"] in (None, row["backend"])
        ):
            return entry
    return None
