"""InceptionV3 port with random weights: shapes, determinism, weight-file round trip, batching.

One jitted forward on 2 images (plus one batched-extractor compile) keeps this to seconds on CPU.
"""

import jax
import numpy as np
import pytest

from adapt_jax.evaluation import convert_pytorch_fid, inception, storage

forward = jax.jit(inception.apply_uint8)


@pytest.fixture(scope="module")
def variables():
    return inception.init_inception_params(seed=0)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def outputs(variables, images):
    return jax.device_get(forward(variables, images))


def test_output_shapes_and_finiteness(outputs):
    assert outputs["pool"].shape == (2, inception.POOL_DIM)
    assert outputs["logits"].shape == (2, inception.NUM_LOGITS)
    assert np.isfinite(outputs["pool"]).all() and np.isfinite(outputs["logits"]).all()
    # pool_3 follows a ReLU, and different images give different features.
    assert (outputs["pool"] >= 0).all()
    assert not np.allclose(outputs["pool"][0], outputs["pool"][1])


def test_forward_is_deterministic(variables, images, outputs):
    again = jax.device_get(forward(variables, images))
    for k in outputs:
        np.testing.assert_array_equal(again[k], outputs[k])


def test_logits_exclude_the_fc_bias(variables, outputs):
    kernel = np.asarray(variables["params"]["fc"]["kernel"], np.float64)
    np.testing.assert_allclose(outputs["logits"], outputs["pool"] @ kernel, rtol=1e-4, atol=1e-3)


def test_variable_names_cover_the_architecture():
    shapes = inception.variable_shapes()
    assert shapes["params/Conv2d_1a_3x3/conv/kernel"] == (3, 3, 3, 32)
    assert shapes["params/Mixed_6b/branch7x7_2/conv/kernel"] == (1, 7, 128, 128)
    assert shapes["params/Mixed_7c/branch_pool/conv/kernel"] == (1, 1, 2048, 192)
    assert shapes["batch_stats/Mixed_5b/branch_pool/bn/var"] == (32,)
    assert shapes["params/fc/kernel"] == (2048, 1008)
    assert sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith("params/")) == 23_850_960


def test_weight_file_round_trip_through_converter_format(tmp_path, variables, images, outputs):
    # What convert_file does after torch.load: PyTorch-layout arrays -> flat flax -> .npz.
    state_dict = convert_pytorch_fid.to_pytorch(storage.flatten(variables))
    assert state_dict["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)  # OIHW
    assert state_dict["fc.weight"].shape == (1008, 2048)
    state_dict["Conv2d_1a_3x3.bn.num_batches_tracked"] = np.array(0)  # present in real files
    path = str(tmp_path / "inception.npz")
    storage.save_npz(path, convert_pytorch_fid.from_pytorch(state_dict))
    loaded = inception.load_inception_params(path)
    again = jax.device_get(forward(loaded, images))
    for k in outputs:
        np.testing.assert_array_equal(again[k], outputs[k])


def test_save_helper_writes_the_same_format(tmp_path, variables):
    path = str(tmp_path / "w.npz")
    inception.save_inception_params(variables, path)
    loaded = storage.flatten(inception.load_inception_params(path))
    for k, v in storage.flatten(variables).items():
        np.testing.assert_array_equal(loaded[k], v)


def test_loader_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        inception.load_inception_params(str(tmp_path / "absent.npz"))
    storage.save_npz(str(tmp_path / "other.npz"), {"params/conv/kernel": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="missing"):
        inception.load_inception_params(str(tmp_path / "other.npz"))


def test_converter_rejects_unknown_keys():
    with pytest.raises(ValueError, match="AuxLogits.fc.stddev"):
        convert_pytorch_fid.from_pytorch({"AuxLogits.fc.stddev": np.zeros(1)})


def test_preprocess_matches_pytorch_fid_conventions():
    x = np.full((1, 8, 8, 3), 255, np.uint8)
    x[0, :, :, 1] = 0
    y = np.asarray(inception.preprocess(x))
    assert y.shape == (1, 299, 299, 3)
    np.testing.assert_allclose(y[..., 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(y[..., 1], -1.0, atol=1e-6)
    # A 299x299 input is not resampled.
    z = np.random.default_rng(1).integers(0, 256, (1, 299, 299, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(inception.preprocess(z)), z / 127.5 - 1.0, atol=1e-6)


def test_batched_extractor_pads_and_matches_direct_forward(variables, images, outputs):
    extract = inception.feature_extractor(variables, batch_size=2)
    three = np.concatenate([images, images[:1]])
    got = extract(three)
    assert got["features"].shape == (3, 2048) and got["logits"].shape == (3, 1008)
    np.testing.assert_allclose(got["features"][:2], outputs["pool"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["features"][2], outputs["pool"][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["logits"][:2], outputs["logits"], rtol=1e-5, atol=1e-4)
