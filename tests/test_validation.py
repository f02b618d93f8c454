"""Bad input is rejected before anything compiles, with a message naming the field and the fix."""

import json
import os
import subprocess
import sys

import jax
import pytest
from conftest import tiny_config

from adapt_jax.config_base import ConfigError
from adapt_jax.training.validation import check_workdir, validate_config

INVALID = [
    ({"method": "adapt"}, "config.method='adapt' is unknown"),
    ({"strategy": "weak", "method": "static"}, "config.strategy='weak' is unknown"),
    ({"loss": "lsgan"}, "config.loss='lsgan' is unknown"),
    ({"model.name": "stylegan"}, "config.model: unknown model 'stylegan'; valid: sngan32"),
    ({"model.resolution": 20}, "unsupported resolution 20; valid: 16, 32, 48, 64"),
    ({"model.name": "biggan32", "model.resolution": 64},
     "config.model.name='biggan32' always produces 32x32 images"),
    ({"method": "static", "strategy": "strong", "sparse.density_g": 0.3, "sparse.d_max": 0.2},
     "the 'strong' strategy gives D d_max"),
    ({"data.source": "imagenet"}, "config.data.source='imagenet' is unknown"),
    ({"sparse.density_g": 0.0}, "config.sparse.density_g=0.0 is outside (0, 1]"),
    ({"sparse.density_g": 1.5}, "config.sparse.density_g=1.5 is outside (0, 1]"),
    ({"sparse.density_d": -0.1}, "config.sparse.density_d=-0.1 is outside (0, 1]"),
    ({"sparse.d_max": 0.2, "sparse.density_d": 0.2}, "exceeds config.sparse.d_max"),
    ({"balance.lower": 0.6, "balance.upper": 0.5}, "must be < config.balance.upper"),
    ({"balance.lower": 0.5, "balance.upper": 0.5}, "must be < config.balance.upper"),
    ({"sparse.delta_d": 0.0}, "config.sparse.delta_d=0.0 must be in (0, 1]"),
    ({"sparse.g_update_every": 0}, "config.sparse.g_update_every=0 must be > 0"),
    ({"sparse.d_adjust_every": -5}, "config.sparse.d_adjust_every=-5 must be > 0"),
    ({"balance.br_every": 0}, "config.balance.br_every=0 must be > 0"),
    ({"train.num_iters": 0}, "config.train.num_iters=0 must be > 0"),
    ({"method": "adapt_strict", "sparse.d_max": 1.0}, "needs config.sparse.d_max < 1"),
    ({"diffaug": "color,blur"}, "config.diffaug='color,blur'"),
    ({"data.source": "folder", "data.path": "/nonexistent/dir"}, "config.data.path"),
    ({"eval.inception_path": "/nonexistent/inception.npz"}, "config.eval.inception_path"),
    ({"balance.band": "reference"}, "needs config.balance.reference: the workdir"),
    ({"balance.band": "reference", "balance.reference": "/nonexistent/run"},
     "config.balance.reference='/nonexistent/run' is not a usable finished run"),
    ({"balance.band": "reference", "balance.reference_width": 0.0},
     "config.balance.reference_width=0.0 must be > 0"),
    ({"eval.flops_mode": "approx"}, "config.eval.flops_mode='approx' is unknown"),
    ({"sparse.distribution": "snip"}, "config.sparse.distribution='snip' is unknown"),
    ({"balance.window": 1, "balance.br_every": 2}, "the window would never fill"),
    ({"eval.num_samples": 1}, "config.eval.num_samples=1: the score needs at least 2"),
    ({"eval.num_samples": 5, "eval.inception_path": "inception_fid.npz"},
     "needs at least 10 samples (a covariance and 10 Inception Score splits)"),
    ({"eval.every": 0}, "config.eval.every=0 must be > 0"),
    ({"eval.batch_size": 0}, "config.eval.batch_size=0 must be > 0"),
    ({"train.ema": 1.5}, "config.train.ema=1.5 is outside [0, 1)"),
    ({"train.ema": 1.0}, "config.train.ema=1.0 is outside [0, 1)"),
    ({"train.lr_d": -1e-4}, "config.train.lr_d=-0.0001 is outside [0, inf)"),
    ({"sparse.g_drop_fraction": 2.0}, "config.sparse.g_drop_fraction=2.0 is outside [0, 1]"),
    ({"sparse.d_dst_drop_fraction": -0.1}, "config.sparse.d_dst_drop_fraction=-0.1 is outside"),
    ({"sparse.dst_both_d_drop_fraction": 1.5}, "dst_both_d_drop_fraction=1.5 is outside [0, 1]"),
    ({"sparse.density_g": 1e-6}, "config.sparse.density_g=1e-06 leaves"),
    ({"sparse.d_min": 1e-6, "sparse.density_d": 1e-6}, "config.sparse.density_d=1e-06 leaves"),
]


@pytest.mark.parametrize("overrides,fragment", INVALID)
def test_invalid_config_rejected_with_field_and_fix(overrides, fragment):
    overrides = dict(overrides)
    c = tiny_config(overrides.pop("method", "adapt_relax"), **overrides)
    with pytest.raises(ConfigError) as e:
        validate_config(c)
    assert fragment in str(e.value)


def test_batch_not_divisible_by_device_count_names_the_fix(monkeypatch):
    monkeypatch.setattr(jax, "device_count", lambda: 3)
    with pytest.raises(ConfigError, match=r"config.train.batch_d=16 is not divisible by the 3 "
                                          r"devices; use a multiple of 3"):
        validate_config(tiny_config())


def test_tiny_config_is_valid():
    validate_config(tiny_config())


def test_workdir_of_a_different_run_is_refused(tmp_path):
    check_workdir(tiny_config(), str(tmp_path))
    check_workdir(tiny_config(**{"train.num_iters": 80}), str(tmp_path))  # extending is fine
    with pytest.raises(ConfigError, match="holds a run of a different config"):
        check_workdir(tiny_config(**{"sparse.density_g": 0.5}), str(tmp_path))


def test_band_fields_matter_only_to_methods_that_read_them(tmp_path):
    """A STATIC run never reads the band, so another band is still the same run; for ADAPT
    (a density-controlled D) it is a different run."""
    static, adapt = tmp_path / "static", tmp_path / "adapt"
    check_workdir(tiny_config("static"), str(static))
    check_workdir(tiny_config("static", **{"balance.band": "calibrated"}), str(static))
    check_workdir(tiny_config("adapt_relax"), str(adapt))
    with pytest.raises(ConfigError, match="balance.band"):
        check_workdir(tiny_config("adapt_relax", **{"balance.band": "calibrated"}), str(adapt))


def test_workdir_with_checkpoints_needs_a_readable_config_json(tmp_path):
    """Without config.json nothing shows the checkpoints are this config's: refuse, and say
    where a copy is; the same for a config.json that is not JSON."""
    check_workdir(tiny_config(), str(tmp_path / "fresh"))  # no checkpoints: a new run
    (tmp_path / "checkpoints" / "10").mkdir(parents=True)
    with pytest.raises(ConfigError, match="has checkpoints but no config.json.*host/metadata"):
        check_workdir(tiny_config(), str(tmp_path))
    (tmp_path / "config.json").write_text('{"method": "adapt_relax", ')
    with pytest.raises(ConfigError, match="config.json is unreadable"):
        check_workdir(tiny_config(), str(tmp_path))
    assert (tmp_path / "config.json").read_text() == '{"method": "adapt_relax", '  # untouched


def test_unwritable_workdir_is_one_line(tmp_path):
    """A --workdir that cannot be created or written names itself (root can write through
    chmod, so a path under a regular file stands in for a read-only directory)."""
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not writable .*use a writable directory"):
        check_workdir(tiny_config(), str(tmp_path / "file" / "run"))
    with pytest.raises(ConfigError, match="file is a file; give a directory"):
        check_workdir(tiny_config(), str(tmp_path / "file"))


def test_read_only_workdir_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("this user can write to read-only directories (root)")
        with pytest.raises(ConfigError, match="is not writable"):
            check_workdir(tiny_config(), str(ro))
    finally:
        ro.chmod(0o700)


def test_workdir_from_an_older_version_without_a_new_field_resumes(tmp_path):
    """A run started before a config field existed resumes while that field has its default,
    and is refused once the new field is set to something else."""
    check_workdir(tiny_config(), str(tmp_path))
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    del saved["model"]["dtype"]
    path.write_text(json.dumps(saved))
    check_workdir(tiny_config(), str(tmp_path))
    path.write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="model.dtype"):
        check_workdir(tiny_config(**{"model.dtype": "bfloat16"}), str(tmp_path))


def test_cli_exits_nonzero_without_traceback(tmp_path):
    """The CLI prints one line naming the field; no Python traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "adapt_jax.main", "--config=configs/biggan_tiny.py",
         "--config.sparse.density_g=2.0", f"--workdir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 2
    assert "config.sparse.density_g=2.0 is outside (0, 1]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_d_starts_at_d_g_unless_density_d_is_set():
    """DDA/ADAPT start D at d_G, so `--config.sparse.density_g=0.3` alone moves both;
    an explicit sparse.density_d wins; baselines follow their strategy."""
    from adapt_jax.config_base import get_base_config
    from adapt_jax.gan import methods

    c = get_base_config()
    c.method, c.sparse.density_g = "adapt_relax", 0.3
    assert c.sparse.density_d is None
    assert methods.initial_densities(c) == (0.3, 0.3)
    validate_config(c)
    c.sparse.density_d = 0.5
    assert methods.initial_densities(c) == (0.3, 0.5)
    c.method, c.strategy = "static", "strong"
    assert methods.initial_densities(c) == (0.3, c.sparse.d_max)
