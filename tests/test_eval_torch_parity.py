"""Numerical parity of the JAX InceptionV3 with an independent PyTorch model of the FID graph.

The PyTorch model below is written in PyTorch's own idioms (NCHW, `F.avg_pool2d(...,
count_include_pad=False)`, `F.interpolate` bilinear) with pytorch-fid's module names, so a strict
`load_state_dict` of the converter's inverse output also checks the parameter naming. Runs only
where torch is installed (it is not a project dependency).
"""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from adapt_jax.evaluation import convert_pytorch_fid, inception, storage  # noqa: E402


class Basic(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def avg3(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = Basic(cin, 64, 1)
        self.branch5x5_1 = Basic(cin, 48, 1)
        self.branch5x5_2 = Basic(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Basic(cin, 64, 1)
        self.branch3x3dbl_2 = Basic(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Basic(96, 96, 3, padding=1)
        self.branch_pool = Basic(cin, pool_features, 1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(avg3(x))], 1)


class BlockB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = Basic(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = Basic(cin, 64, 1)
        self.branch3x3dbl_2 = Basic(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Basic(96, 96, 3, stride=2)

    def forward(self, x):
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), bd, F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = Basic(cin, 192, 1)
        self.branch7x7_1 = Basic(cin, c7, 1)
        self.branch7x7_2 = Basic(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = Basic(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = Basic(cin, c7, 1)
        self.branch7x7dbl_2 = Basic(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = Basic(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = Basic(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = Basic(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = Basic(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(avg3(x))], 1)


class BlockD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = Basic(cin, 192, 1)
        self.branch3x3_2 = Basic(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Basic(cin, 192, 1)
        self.branch7x7x3_2 = Basic(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Basic(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Basic(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    def __init__(self, cin, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = Basic(cin, 320, 1)
        self.branch3x3_1 = Basic(cin, 384, 1)
        self.branch3x3_2a = Basic(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = Basic(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = Basic(cin, 448, 1)
        self.branch3x3dbl_2 = Basic(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Basic(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Basic(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Basic(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else avg3(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class TorchFIDInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Basic(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Basic(32, 32, 3)
        self.Conv2d_2b_3x3 = Basic(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Basic(64, 80, 1)
        self.Conv2d_4a_3x3 = Basic(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c = BlockA(192, 32), BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b, self.Mixed_7c = BlockE(1280, False), BlockE(2048, True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, uint8_nhwc):
        x = torch.from_numpy(uint8_nhwc).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        pool = x.mean(dim=(2, 3))
        return pool, pool @ self.fc.weight.T


@pytest.fixture(scope="module")
def torch_model_and_flat():
    torch.manual_seed(0)
    flat = storage.flatten(inception.init_inception_params(seed=3))
    model = TorchFIDInception().eval()
    state = {k: torch.from_numpy(v) for k, v in convert_pytorch_fid.to_pytorch(flat).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == []
    assert all(k.endswith("num_batches_tracked") for k in missing)
    return model, flat


def test_parameter_count_matches_the_torch_model(torch_model_and_flat):
    model, _ = torch_model_and_flat
    n_torch = sum(p.numel() for p in model.parameters())
    n_jax = sum(int(np.prod(s)) for k, s in inception.variable_shapes().items()
                if k.startswith("params/"))
    assert n_torch == n_jax


@pytest.mark.parametrize("size", [16, 299])
def test_forward_matches_torch(torch_model_and_flat, size):
    model, flat = torch_model_and_flat
    images = np.random.default_rng(size).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        pool_t, logits_t = (t.numpy() for t in model(images))
    out = jax.jit(inception.apply_uint8)(storage.unflatten(flat), images)
    scale = np.abs(pool_t).max()
    np.testing.assert_allclose(np.asarray(out["pool"]), pool_t, atol=1e-4 * scale, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(out["logits"]), logits_t,
                               atol=1e-4 * np.abs(logits_t).max(), rtol=1e-4)


def test_convert_file_reads_a_torch_checkpoint(tmp_path, torch_model_and_flat):
    model, flat = torch_model_and_flat
    pth = tmp_path / "pt_inception.pth"
    torch.save(model.state_dict(), pth)  # includes num_batches_tracked, as real files may
    out = tmp_path / "inception.npz"
    convert_pytorch_fid.convert_file(str(pth), str(out))
    loaded = storage.flatten(inception.load_inception_params(str(out)))
    assert loaded.keys() == flat.keys()
    for k in flat:
        np.testing.assert_array_equal(loaded[k], flat[k])
