"""The model zoo, built from the real conf/model YAMLs at 64x64, batch 2, on CPU.

Each model is built once per module (fixture ``built``) and shared by the
shape, parameter-count, training-step and save/load tests. FCN8 with plain
convolutions needs ~2.5 GB and seconds per call even at 64x64, so it
appears in one test only.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from ssnets.common.errors import UserError
from ssnets.models import MIN_INPUT_MULTIPLE, build_model, weights
from ssnets.models.__main__ import main as print_model_table
from ssnets.models.layers import BilinearUpsampling, Preprocessing, walk_layers

# Keras' TensorFlow backend converts variables with np.array(x) under NumPy 2 (thousands of
# warnings while saving); it is theirs and harmless.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

CONF_DIR = Path(__file__).parents[1] / "ssnets" / "conf"
SIZE, BATCH, NUM_CLASSES, L2 = 64, 2, 2, 1e-4

# Measured with count_params() at 2 classes (the count does not depend on the input size).
EXPECTED_PARAMS = {
    "fcn8": 134_288_326,
    "fast_fcn8": 20_607_585,
    "mobilenet_unet": 6_502_786,
    "fc_densenet121": 28_185_090,
    "fc_densenet169": 44_600_962,
    "fc_densenet201": 71_315_330,
}
# The reference implementation's figures, which FCN8 must match within 1%.
REFERENCE_PARAMS = {"fcn8": 134.3e6, "fast_fcn8": 20.6e6}
# One config per family, for the checks that do not depend on the variant.
FAMILIES = ["fast_fcn8", "mobilenet_unet", "fc_densenet121"]


def model_cfg(name: str, **overrides):
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose(overrides=[f"+model={name}"]).model
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def images(channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (BATCH, SIZE, SIZE, channels)).astype("float32")


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_every_config_is_tested():
    assert sorted(EXPECTED_PARAMS) == sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))


@pytest.fixture(scope="module", params=[name for name in EXPECTED_PARAMS if name != "fcn8"])
def built(request) -> tuple[str, keras.Model]:
    return request.param, build_model(model_cfg(request.param), (SIZE, SIZE, 3), NUM_CLASSES, L2)


def test_forward_gives_probabilities(built):
    name, model = built
    y = predict(model, images())
    assert model.name == name
    assert y.shape == (BATCH, SIZE, SIZE, NUM_CLASSES)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


def test_parameter_count(built):
    name, model = built
    assert model.count_params() == EXPECTED_PARAMS[name]
    if name in REFERENCE_PARAMS:
        assert model.count_params() == pytest.approx(REFERENCE_PARAMS[name], rel=0.01)


def test_l2_penalty_is_in_the_losses(built):
    _, model = built
    assert model.losses
    assert all(np.isfinite(keras.ops.convert_to_numpy(loss)) for loss in model.losses)


def test_training_step_stays_finite(built):
    _, model = built
    # Eager: tracing the training step of FC-DenseNet201 takes ~3 minutes on 2 cores, the step itself seconds.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", run_eagerly=True)
    masks = np.random.default_rng(1).integers(0, NUM_CLASSES, (BATCH, SIZE, SIZE))
    loss = model.train_on_batch(images(), masks)
    assert np.isfinite(loss)
    assert np.isfinite(predict(model, images(seed=1))).all()


def test_keras_file_round_trip(built, tmp_path):
    _, model = built
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = images(seed=2)
    np.testing.assert_allclose(predict(loaded, x), predict(model, x), rtol=1e-5, atol=1e-6)


def test_fcn8_conv_matches_reference_and_takes_vgg16_weights(tmp_path):
    vgg16 = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg16_path = tmp_path / "vgg16_notop.weights.h5"
    vgg16.save_weights(vgg16_path)

    model = build_model(model_cfg("fcn8", weights=str(vgg16_path)), (SIZE, SIZE, 3), NUM_CLASSES, L2)

    assert model.count_params() == EXPECTED_PARAMS["fcn8"]
    assert model.count_params() == pytest.approx(REFERENCE_PARAMS["fcn8"], rel=0.01)
    for layer_name in ("block1_conv1", "block3_conv2", "block5_conv3"):
        for ours, theirs in zip(
            model.get_layer(layer_name).get_weights(), vgg16.get_layer(layer_name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)
    y = predict(model, images())
    assert y.shape == (BATCH, SIZE, SIZE, NUM_CLASSES)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_size_not_multiple_of_32_is_refused(name):
    with pytest.raises(
        ValueError, match=f"^image_size 100 is not divisible by 32, which {name} needs; use e.g. 96 or 128.$"
    ):
        build_model(model_cfg(name), (100, 100, 3), NUM_CLASSES, L2)
    with pytest.raises(UserError, match="image_size 16 is not divisible by 32"):
        build_model(model_cfg(name), (64, 16, 3), NUM_CLASSES, L2)
    assert MIN_INPUT_MULTIPLE == 32


@pytest.mark.parametrize("name", FAMILIES)
def test_single_channel_input(name):
    model = build_model(model_cfg(name), (SIZE, 2 * SIZE, 1), 3, L2)
    assert predict(model, np.zeros((1, SIZE, 2 * SIZE, 1), "float32")).shape == (1, SIZE, 2 * SIZE, 3)


@pytest.mark.parametrize("name", FAMILIES)
def test_imagenet_without_network_says_how_to_pass_a_file(name, monkeypatch):
    # A host under .invalid never resolves (RFC 2606), so the download host is unreachable on any machine.
    monkeypatch.setattr(weights, "IMAGENET_WEIGHTS_HOST", ("weights.invalid", 443))
    message = (
        f"Could not download ImageNet weights for {name} (no internet access?); "
        "download them elsewhere and pass weights=/path/to/file.weights.h5."
    )
    with pytest.raises(UserError) as error:
        build_model(model_cfg(name, weights="imagenet"), (SIZE, SIZE, 3), NUM_CLASSES, L2)
    assert str(error.value) == message


@pytest.mark.parametrize("name", FAMILIES)
def test_missing_weights_file(name, tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(UserError, match=f"^Weights file {missing} does not exist.$"):
        build_model(model_cfg(name, weights=str(missing)), (SIZE, SIZE, 3), NUM_CLASSES, L2)


@pytest.mark.parametrize("name", FAMILIES)
def test_whole_model_weights_file_loads_into_a_fresh_model(name, tmp_path):
    source = build_model(model_cfg(name), (SIZE, SIZE, 3), NUM_CLASSES, L2)
    path = tmp_path / "model.weights.h5"
    source.save_weights(path)
    fresh = build_model(model_cfg(name, weights=str(path)), (SIZE, SIZE, 3), NUM_CLASSES, L2)
    x = images(seed=3)
    np.testing.assert_allclose(predict(fresh, x), predict(source, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_model_trained_for_other_classes_and_size_fills_all_but_its_head(name, tmp_path):
    # Pretraining: a 2-class model (e.g. synthetic iris) starts a 3-class model at another image size.
    source = build_model(model_cfg(name), (SIZE, SIZE, 3), 2, L2)
    path = tmp_path / "pretrained.keras"
    source.save(path)
    with pytest.warns(UserWarning, match="left at their initialisation") as caught:
        target = build_model(model_cfg(name, weights=str(path)), (2 * SIZE, 2 * SIZE, 3), 3, L2)

    source_layers = {layer.name: layer for layer in walk_layers(source) if layer.weights}
    copied, head = 0, []  # parameters copied; layers left at their initialisation
    for layer in (layer for layer in walk_layers(target) if layer.weights):
        ours, theirs = layer.get_weights(), source_layers[layer.name].get_weights()
        if [w.shape for w in ours] == [w.shape for w in theirs]:
            for mine, pretrained in zip(ours, theirs, strict=True):
                np.testing.assert_array_equal(mine, pretrained)
                copied += mine.size
        else:
            head.append(layer.name)
            assert 3 in ours[0].shape  # only class-sized layers are left out
    assert head and copied > 0.95 * target.count_params()
    assert all(layer_name in str(caught[0].message) for layer_name in head)
    probabilities = predict(target, np.zeros((1, 2 * SIZE, 2 * SIZE, 3), "float32"))
    assert probabilities.shape == (1, 2 * SIZE, 2 * SIZE, 3) and np.isfinite(probabilities).all()


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_encoder_weights_file_fills_the_encoder(suffix, tmp_path):
    mobilenet = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    path = tmp_path / f"mobilenet_v2{suffix}"
    mobilenet.save_weights(path) if suffix == ".weights.h5" else mobilenet.save(path)

    model = build_model(model_cfg("mobilenet_unet", weights=str(path)), (SIZE, SIZE, 3), NUM_CLASSES, L2)

    encoder = model.get_layer("encoder")
    for layer_name in ("Conv1", "block_6_expand", "block_16_project"):
        for ours, theirs in zip(
            encoder.get_layer(layer_name).get_weights(), mobilenet.get_layer(layer_name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)


def test_frozen_encoder():
    model = build_model(model_cfg("mobilenet_unet", encoder_trainable=False), (SIZE, SIZE, 3), NUM_CLASSES, L2)
    encoder = model.get_layer("encoder")
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    assert encoder.count_params() > 0
    assert trainable == model.count_params() - encoder.count_params() - _batch_norm_statistics(model, skip=encoder)


def _batch_norm_statistics(model: keras.Model, skip: keras.Model) -> int:
    return sum(
        math.prod(weight.shape) for layer in model.layers if layer is not skip for weight in layer.non_trainable_weights
    )


def test_output_is_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(model_cfg("mobilenet_unet"), (SIZE, SIZE, 3), NUM_CLASSES, L2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    y = predict(model, images())
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-3)


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("imagenet", keras.applications.vgg16.preprocess_input),
        ("mobilenet", keras.applications.mobilenet_v2.preprocess_input),
        ("none", lambda x: x),
    ],
)
def test_preprocessing_matches_keras_applications(mode, reference):
    x = images()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(Preprocessing(mode)(x)), reference(x.copy()), rtol=1e-5, atol=1e-4
    )


def test_single_channel_imagenet_preprocessing_subtracts_the_mean_of_the_means():
    x = images(channels=1)
    expected = x - np.mean([103.939, 116.779, 123.68])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(Preprocessing("imagenet")(x)), expected, rtol=1e-5, atol=1e-4)


def test_bilinear_upsampling_doubles_a_smooth_image():
    upsample = keras.layers.Conv2DTranspose(
        1, 4, strides=2, padding="valid", use_bias=False, kernel_initializer=BilinearUpsampling()
    )
    ramp = np.tile(np.arange(8, dtype="float32"), (8, 1))[None, :, :, None]
    # FCN crops 1 pixel on each side of a 4x4 stride-2 upsampling; away from the borders the
    # result interpolates linearly between neighbours, half a pixel apart.
    y = keras.ops.convert_to_numpy(upsample(ramp))[0, 1:-1, 1:-1, 0]
    assert y.shape == (16, 16)
    np.testing.assert_allclose(y[4, 2:-2], np.arange(2, 14) / 2 - 0.25, atol=1e-6)


def test_model_table_cli(capsys):
    print_model_table(["--image-size", str(SIZE), "--models", "mobilenet_unet"])
    output = capsys.readouterr().out
    assert f"| mobilenet_unet | conv | {EXPECTED_PARAMS['mobilenet_unet']:,} |" in output
    assert f"(None, {SIZE}, {SIZE}, 2)" in output
    assert "| mobilenet_unet | ds |" in output
