"""``python -m ssnets.models``: parameter counts of every configured model, without training.

Composes each ``conf/model/*.yaml`` with Hydra, builds it for each conv type
at the given image size and prints name, conv_type, total and trainable
parameters and output shape as a Markdown table.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import keras
from hydra import compose, initialize_config_dir

from ssnets.common.tables import markdown_table
from ssnets.models import build_model
from ssnets.models.layers import CONV_TYPES

CONFIG_DIR = Path(__file__).parents[1] / "conf"


def model_names() -> list[str]:
    return sorted(path.stem for path in (CONFIG_DIR / "model").glob("*.yaml"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ssnets.models", description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224, help="input height and width (multiple of 32)")
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--models", nargs="+", default=None, help=f"subset of {', '.join(model_names())}")
    parser.add_argument("--conv-types", nargs="+", default=list(CONV_TYPES), choices=CONV_TYPES)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    input_shape = (args.image_size, args.image_size, args.channels)
    print(f"input {input_shape}, {args.num_classes} classes")
    rows = []
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        for name in args.models or model_names():
            for conv_type in args.conv_types:
                cfg = compose(overrides=[f"+model={name}", f"model.conv_type={conv_type}"])
                model = build_model(cfg.model, input_shape, args.num_classes, l2=0.0)
                trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
                rows.append([name, conv_type, f"{model.count_params():,}", f"{trainable:,}", str(model.output_shape)])
                del model
                keras.backend.clear_session()
    headings = ["model", "conv_type", "total params", "trainable params", "output shape"]
    print(markdown_table(headings, rows, right_aligned=[False, False, True, True, False]), end="")


if __name__ == "__main__":
    main()
