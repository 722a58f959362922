"""Procedurally generated iris close-ups with NICE-I style masks (1 = visible iris), one module per stage.

`geometry` places the eye in a (4:3) camera frame and `appearance` picks its
colours for the near-infrared or visible-light `mode`; `canvas` holds the
sub-pixel grids and blending primitives that `strokes` (lashes, brow, hair,
vessels, lid glints), `skin`, `eyeball`, `reflections` and `glasses` paint with;
`camera` turns the painted scene into a photograph (with randomised light,
blur, resolution, tone, noise and JPEG); `render` runs those stages for one sample; `cache` writes
samples into a dataset on disk, keyed by what decides its pixels; `loader` is the
Hydra data loader over it and `__main__` the command line. Each module imports
only the stages before it. The package may import only numpy, scipy,
scikit-image, imageio, `ssnets.common`, `ssnets.data.types`, `ssnets.data.folder`
and `ssnets.task.pictures`, so generating never loads TensorFlow or Keras.
"""

from ssnets.data.iris.cache import ensure_dataset, write_dataset
from ssnets.data.iris.loader import load
from ssnets.data.iris.render import render_sample, render_with_geometry, sample_rng

__all__ = ["ensure_dataset", "load", "render_sample", "render_with_geometry", "sample_rng", "write_dataset"]
