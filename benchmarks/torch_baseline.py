"""JAX vs. a plain PyTorch implementation of the same training iteration (comparison only).

The PyTorch side is written here from the architecture in `adapt_jax/models` (it is not a
dependency of the project; without torch this script prints a skip and exits 0):

- full: SNGAN-CIFAR-10 (`sngan32`, configs/sngan_cifar10.py): 5 D steps at batch 64 (real and
  fake in one SN forward, hinge loss, Adam(0, 0.9), masks re-applied after every step), then one
  G step at batch 128 through the frozen D (no SN power iteration, no D weight gradients), Adam,
  masks, EMA of G.
- tiny: the default config (configs/biggan_tiny.py): the `biggan` family at 16x16 (SN in G and D,
  shared embedding + hierarchical z feeding SN-linear conditional BN, projection D), 1 D step,
  1 G step, batch 64.

Both sides use fixed random masks at the config's densities (the STATIC method: the dense
compute of a masked step is the same for every method), 2 threads, float32, the same numpy batch
iterator. JAX runs `Trainer.iteration()` of the real trainer (method 'static'). Each round times
one D step and one G step of every variant, interleaved; an iteration is n_critic*D + G. The
tiny config is also timed as whole iterations (host overhead matters there).

JAX variants: conv_impl 'cpu_auto' (the CPU default since this benchmark) and 'xla' (plain
lax.conv_general_dilated, the implementation before it). PyTorch runs in worker processes of its
own (2 and 1 threads; OpenMP with 2 threads degrades badly when the 2 cores are shared), driven
step by step over a pipe so that both sides are interleaved round by round; ratios are to the
faster PyTorch variant.

Usage: python benchmarks/torch_baseline.py [--configs tiny,full] [--rounds 7] [--full-rounds 2]
       [--jax-impls cpu_auto,xla] [--torch-threads 2,1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import subprocess
import sys
import time

import _bench
import jax
import jax.numpy as jnp
import numpy as np

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is optional
    torch = None


# -- the PyTorch models ----------------------------------------------------------------------
if torch is not None:

    def _sn(module, on: bool, eps: float):
        return tnn.utils.spectral_norm(module, eps=eps) if on else module

    class CBN(tnn.Module):
        """'bn': affine BN. 'shared': affine-free BN, x*(1+g)+b, g/b SN-linears of cond."""

        def __init__(self, c, kind, cond_dim, sn, eps, sn_eps):
            super().__init__()
            self.kind = kind
            self.bn = tnn.BatchNorm2d(c, eps=eps, momentum=0.1, affine=kind == "bn")
            if kind == "shared":
                self.gain = _sn(tnn.Linear(cond_dim, c, bias=False), sn, sn_eps)
                self.bias = _sn(tnn.Linear(cond_dim, c, bias=False), sn, sn_eps)

        def forward(self, x, cond):
            x = self.bn(x)
            if self.kind == "bn":
                return x
            return x * (1 + self.gain(cond)[:, :, None, None]) + self.bias(cond)[:, :, None, None]

    class GBlock(tnn.Module):
        def __init__(self, cin, cout, kind, cond_dim, sn, bn_eps, sn_eps):
            super().__init__()
            self.bn1 = CBN(cin, kind, cond_dim, sn, bn_eps, sn_eps)
            self.bn2 = CBN(cout, kind, cond_dim, sn, bn_eps, sn_eps)
            self.conv1 = _sn(tnn.Conv2d(cin, cout, 3, padding=1), sn, sn_eps)
            self.conv2 = _sn(tnn.Conv2d(cout, cout, 3, padding=1), sn, sn_eps)
            self.conv_sc = _sn(tnn.Conv2d(cin, cout, 1), sn, sn_eps)
            self.maskable = [self.conv1, self.conv2, self.conv_sc]

        def forward(self, x, cond):
            h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
            h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
            return h + self.conv_sc(F.interpolate(x, scale_factor=2, mode="nearest"))

    class DBlock(tnn.Module):
        def __init__(self, cin, cout, down, optimized, hidden_in, sn, sn_eps):
            super().__init__()
            hidden = cin if (hidden_in and not optimized) else cout
            self.down, self.optimized = down, optimized
            self.conv1 = _sn(tnn.Conv2d(cin, hidden, 3, padding=1), sn, sn_eps)
            self.conv2 = _sn(tnn.Conv2d(hidden, cout, 3, padding=1), sn, sn_eps)
            self.maskable = [self.conv1, self.conv2]
            self.conv_sc = None
            if optimized or down or cin != cout:
                self.conv_sc = _sn(tnn.Conv2d(cin, cout, 1), sn, sn_eps)
                self.maskable.append(self.conv_sc)

        def forward(self, x):
            h = x if self.optimized else F.relu(x)
            h = self.conv2(F.relu(self.conv1(h)))
            if self.down:
                h = F.avg_pool2d(h, 2)
            if self.optimized:
                return h + self.conv_sc(F.avg_pool2d(x, 2))
            if self.conv_sc is None:
                return h + x
            sc = self.conv_sc(x)
            return h + (F.avg_pool2d(sc, 2) if self.down else sc)

    class Generator(tnn.Module):
        def __init__(self, widths, bottom, z_dim, kind, num_classes, shared_dim, hierarchical,
                     sn, bn_eps, sn_eps):
            super().__init__()
            n = len(widths) - 1
            self.widths, self.bottom, self.hierarchical, self.n = widths, bottom, hierarchical, n
            self.chunk = z_dim // (n + 1) if hierarchical else z_dim
            self.shared = tnn.Embedding(num_classes, shared_dim) if num_classes else None
            cond_dim = (shared_dim if num_classes else 0) + (self.chunk if hierarchical else 0)
            self.linear = _sn(tnn.Linear(self.chunk, bottom * bottom * widths[0]), sn, sn_eps)
            self.blocks = tnn.ModuleList(
                GBlock(widths[i], widths[i + 1], kind, cond_dim, sn, bn_eps, sn_eps)
                for i in range(n))
            self.bn = CBN(widths[-1], "bn", 0, sn, bn_eps, sn_eps)
            self.conv_out = _sn(tnn.Conv2d(widths[-1], 3, 3, padding=1), sn, sn_eps)
            self.maskable = ([self.linear] + [m for b in self.blocks for m in b.maskable]
                             + [self.conv_out])

        def forward(self, z, y):
            k = self.chunk
            chunks = ([z[:, i * k:(i + 1) * k] for i in range(self.n + 1)]
                      if self.hierarchical else [z] + [None] * self.n)
            h = self.linear(chunks[0]).view(z.shape[0], self.widths[0], self.bottom, self.bottom)
            for block, zc in zip(self.blocks, chunks[1:], strict=True):
                parts = ([self.shared(y)] if self.shared is not None else []) + (
                    [zc] if zc is not None else [])
                h = block(h, torch.cat(parts, 1) if parts else None)
            return torch.tanh(self.conv_out(F.relu(self.bn(h, None))))

    class Discriminator(tnn.Module):
        def __init__(self, widths, downs, num_classes, hidden_in, sn, sn_eps):
            super().__init__()
            cins = (3,) + tuple(widths[:-1])
            self.blocks = tnn.ModuleList(
                DBlock(ci, co, dn, i == 0, hidden_in, sn, sn_eps)
                for i, (ci, co, dn) in enumerate(zip(cins, widths, downs, strict=True)))
            self.linear = _sn(tnn.Linear(widths[-1], 1), sn, sn_eps)
            self.embed = (_sn(tnn.Embedding(num_classes, widths[-1]), sn, sn_eps)
                          if num_classes else None)
            self.maskable = [m for b in self.blocks for m in b.maskable]
            if not num_classes:  # unconditional: the final linear is masked (head otherwise)
                self.maskable.append(self.linear)

        def forward(self, x, y):
            h = x
            for block in self.blocks:
                h = block(h)
            h = torch.sum(F.relu(h), dim=(2, 3))
            out = self.linear(h)[:, 0]
            if self.embed is not None:
                out = out + torch.sum(self.embed(y) * h, dim=1)
            return out

    def _weight(module):
        return module.weight_orig if hasattr(module, "weight_orig") else module.weight

    class TorchGAN:
        """One training iteration of the benchmarked config, STATIC method (fixed masks)."""

        def __init__(self, config, seed: int = 0):
            torch.manual_seed(seed)
            m, t = config.model, config.train
            if m.name == "sngan32":
                self.G = Generator((256,) * 4, 4, 128, "bn", 0, 0, False, False, 1e-5, 1e-12)
                self.D = Discriminator((128,) * 4, (True, True, False, False), 0, True, True,
                                       1e-12)
                self.z_dim, self.num_classes = 128, 0
            elif m.name == "biggan":
                n = {16: 2, 32: 3, 64: 4}[m.resolution]
                bottom = 4
                self.G = Generator(tuple(m.g_ch * 2 ** (n - i) for i in range(n + 1)), bottom,
                                   m.z_dim, "shared", m.num_classes, m.g_ch, True, True, 1e-4,
                                   1e-6)
                self.D = Discriminator(tuple(m.d_ch * 2 ** i for i in range(n + 1)),
                                       (True,) * n + (False,), m.num_classes, False, True, 1e-6)
                self.z_dim, self.num_classes = m.z_dim, m.num_classes
            else:
                raise ValueError(f"no PyTorch port of model {m.name!r}")
            self.n_critic, self.batch_g, self.ema_decay = t.n_critic, t.batch_g, t.ema
            self.opt_g = torch.optim.Adam(self.G.parameters(), t.lr_g, betas=(t.b1, t.b2))
            self.opt_d = torch.optim.Adam(self.D.parameters(), t.lr_d, betas=(t.b1, t.b2))
            self.masks_g = self._masks(self.G, config.sparse.density_g)
            self.masks_d = self._masks(self.D, config.sparse.density_g)  # balance strategy
            self.ema = [p.detach().clone() for p in self.G.parameters()]

        @staticmethod
        @torch.no_grad()
        def _masks(net, density):
            out = []
            for module in net.maskable:
                w = _weight(module)
                mask = torch.rand_like(w) < density
                w.mul_(mask)
                out.append((w, mask))
            return out

        @staticmethod
        @torch.no_grad()
        def _apply(masks):
            for w, mask in masks:
                w.mul_(mask)

        def _latents(self, n):
            z = torch.randn(n, self.z_dim)
            y = torch.randint(0, self.num_classes, (n,)) if self.num_classes else None
            return z, y

        def d_step(self, reals, labels):
            self.G.train()
            self.D.train()
            z, y_fake = self._latents(reals.shape[0])
            with torch.no_grad():
                fake = self.G(z, y_fake)
            y = None if labels is None else torch.cat([labels, y_fake])
            logits = self.D(torch.cat([reals, fake]), y)
            n = reals.shape[0]
            loss = F.relu(1 - logits[:n]).mean() + F.relu(1 + logits[n:]).mean()
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            self._apply(self.masks_d)
            return loss

        def g_step(self):
            self.G.train()
            self.D.eval()  # frozen D: stored SN vectors, no power iteration
            for p in self.D.parameters():
                p.requires_grad_(False)
            z, y = self._latents(self.batch_g)
            loss = -self.D(self.G(z, y), y).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
            self._apply(self.masks_g)
            with torch.no_grad():
                params = list(self.G.parameters())
                torch._foreach_mul_(self.ema, self.ema_decay)
                torch._foreach_add_(self.ema, params, alpha=1.0 - self.ema_decay)
            for p in self.D.parameters():
                p.requires_grad_(True)
            return loss

        def iteration(self, batches):
            for _ in range(self.n_critic):
                reals, labels = batches()
                self.d_step(reals, labels)
            return self.g_step()


def torch_batches(batch_iter, conditional: bool):
    """The trainer's numpy batch stream (same BatchIterator), as NCHW torch tensors."""
    def next_batch():
        images, labels = batch_iter.next()
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        y = torch.from_numpy(labels.astype(np.int64)) if conditional else None
        return x, y
    return next_batch


def torch_worker(which: str, threads: int) -> None:
    """Child process: builds the PyTorch GAN, then times one D step / G step / iteration per
    command read from stdin ('d', 'g', 'it'); answers with seconds. A process of its own, so
    XLA's thread pool never competes with PyTorch's OpenMP threads."""
    from adapt_jax import data

    torch.set_num_threads(threads)
    cfg = _bench.load_config(which, "static")
    source = data.make_source(cfg.data, cfg.model.resolution, cfg.model.num_classes)
    batches = torch_batches(data.BatchIterator(source, cfg.train.batch_d, seed=cfg.seed,
                                               flip=cfg.data.flip),
                            cfg.model.num_classes > 0)
    tg = TorchGAN(cfg)
    start = time.perf_counter()
    tg.iteration(batches)
    print(f"ready {time.perf_counter() - start}", flush=True)
    ops = {"d": lambda: tg.d_step(*batches()), "g": tg.g_step,
           "it": lambda: tg.iteration(batches)}
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        start = time.perf_counter()
        ops[cmd]()
        print(f"{time.perf_counter() - start}", flush=True)


class TorchProcess:
    def __init__(self, which: str, threads: int):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--torch-worker", which, "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"torch worker failed to start: {ready}")
        self.first_iteration_s = float(ready[1])

    def time(self, cmd: str) -> float:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


# -- JAX side --------------------------------------------------------------------------------
class JaxVariant:
    """The trainer's D and G steps traced under one conv implementation, on a private state."""

    def __init__(self, trainer, impl: str):
        from adapt_jax.gan.steps import GanSteps

        self.trainer, self.impl = trainer, impl
        base, gan = trainer.components.gan_steps, trainer.components.gan

        def with_impl(net):
            return net.clone(spec=dataclasses.replace(net.spec, conv_impl=impl))

        s = GanSteps(with_impl(gan.generator), with_impl(gan.discriminator), base.tx_g,
                     base.tx_d, base.cfg)
        self.d = jax.jit(s.d_step, donate_argnums=0)
        self.g = jax.jit(s.g_step, donate_argnums=0)
        self.state = jax.tree.map(jnp.copy, trainer.state)
        self.n_critic = trainer.config.train.n_critic
        start = time.perf_counter()
        self.d_step()
        self.compile_d = time.perf_counter() - start
        start = time.perf_counter()
        self.g_step()
        self.compile_g = time.perf_counter() - start

    def d_step(self):
        x, y = self.trainer.next_batch()
        self.state, m = self.d(self.state, x, y, jnp.int32(0))
        return self.state

    def g_step(self):
        x, y = self.trainer.next_batch()
        self.state, m = self.g(self.state, x, y, jnp.int32(self.n_critic), jnp.bool_(False),
                               jnp.bool_(False), jnp.float32(0.0))
        return self.state


def run_config(which: str, rounds: int, impls: list[str], whole_iters: int,
               threads: list[int]) -> dict:
    print(f"[{which}] building trainer ...", flush=True)
    trainer = _bench.make_trainer(which, "static")
    cfg = trainer.config
    variants = {f"jax_{impl}": JaxVariant(trainer, impl) for impl in impls}
    workers = {f"torch_{t}thr": TorchProcess(which, t) for t in threads}
    samples = {name: {"d": [], "g": []} for name in [*variants, *workers]}
    for r in range(rounds):
        for name, v in variants.items():
            samples[name]["d"].append(_bench.timed(v.d_step))
            samples[name]["g"].append(_bench.timed(v.g_step))
        for name, w in workers.items():
            samples[name]["d"].append(w.time("d"))
            samples[name]["g"].append(w.time("g"))
        print(f"[{which}] round {r + 1}/{rounds} (load {os.getloadavg()[0]:.1f}): " + ", ".join(
            f"{n} D {s['d'][-1]:.3f}s G {s['g'][-1]:.3f}s" for n, s in samples.items()),
            flush=True)
    n = cfg.train.n_critic
    rows = []
    for name, s in samples.items():
        d, g = _bench.median(s["d"]), _bench.median(s["g"])
        rows.append({"variant": name, "d_step_s": d, "g_step_s": g, "iteration_s": n * d + g,
                     "d_samples": s["d"], "g_samples": s["g"]})
    best = min((r for r in rows if r["variant"].startswith("torch")),
               key=lambda r: r["iteration_s"])
    for r in rows:
        r["x_torch"] = r["iteration_s"] / best["iteration_s"]
        r["d_x_torch"] = r["d_step_s"] / best["d_step_s"]
        r["g_x_torch"] = r["g_step_s"] / best["g_step_s"]
    result = {"config": which, "model": cfg.model.name, "n_critic": n,
              "batch_d": cfg.train.batch_d, "batch_g": cfg.train.batch_g,
              "density": cfg.sparse.density_g, "rounds": rounds, "rows": rows,
              "torch_reference": best["variant"],
              "jax_compile_s": {k: {"d_step": v.compile_d, "g_step": v.compile_g}
                                for k, v in variants.items()},
              "torch_first_iteration_s": {k: w.first_iteration_s for k, w in workers.items()}}
    if whole_iters:
        # Whole iterations: Trainer.iteration() (host loop included) vs the torch loop.
        trainer.iteration()  # compiles the trainer's own steps (default conv impl)

        def jax_iterations():
            for _ in range(whole_iters):
                trainer.iteration()
            return trainer.state

        whole = {"jax_trainer_iteration": [], **{k: [] for k in workers}}
        for _ in range(rounds):
            whole["jax_trainer_iteration"].append(_bench.timed(jax_iterations) / whole_iters)
            for name, w in workers.items():
                whole[name].append(sum(w.time("it") for _ in range(whole_iters)) / whole_iters)
        res = {k: _bench.median(v) for k, v in whole.items()}
        best_torch = min(res[k] for k in workers)
        res["iters_per_sample"] = whole_iters
        res["jax_x_best_torch"] = res["jax_trainer_iteration"] / best_torch
        result["whole_iterations"] = res
    for w in workers.values():
        w.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,full")
    parser.add_argument("--rounds", type=int, default=7, help="rounds for the tiny config")
    parser.add_argument("--full-rounds", type=int, default=2)
    parser.add_argument("--jax-impls", default="cpu_auto,xla")
    parser.add_argument("--torch-threads", default="2,1")
    parser.add_argument("--out", default=None)
    parser.add_argument("--torch-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if torch is None:
        print("SKIP: torch is not installed (it is only needed for this comparison)")
        return 0
    if args.torch_worker:
        torch_worker(args.torch_worker, args.threads)
        return 0
    sampler = _bench.LoadSampler()
    result = {"benchmark": "torch_baseline", **_bench.environment(),
              "torch_version": torch.__version__, "torch_threads": 2, "configs": {}}
    impls = args.jax_impls.split(",")
    for which in args.configs.split(","):
        rounds = args.rounds if which == "tiny" else args.full_rounds
        result["configs"][which] = run_config(
            which, rounds, impls, whole_iters=20 if which == "tiny" else 0,
            threads=[int(t) for t in args.torch_threads.split(",")])
    result["load_average"] = sampler.stop()
    for which, res in result["configs"].items():
        print(f"\n{which}: {res['model']}, n_critic {res['n_critic']}, batch D {res['batch_d']}"
              f" / G {res['batch_g']}, density {res['density']}, medians of {res['rounds']}")
        print(_bench.table(res["rows"], [
            ("variant", "variant", ""), ("d_step_s", "D step s", ".4f"),
            ("g_step_s", "G step s", ".4f"), ("iteration_s", "iter s", ".4f"),
            ("d_x_torch", "D/torch", ".2f"), ("g_x_torch", "G/torch", ".2f"),
            ("x_torch", "iter/torch", ".2f")]))
        print(f"(ratios are to the faster PyTorch variant, {res['torch_reference']})")
        if "whole_iterations" in res:
            w = res["whole_iterations"]
            print("whole iterations (s/iteration): " + ", ".join(
                f"{k} {v:.4f}" for k, v in w.items() if k not in ("iters_per_sample",
                                                                  "jax_x_best_torch"))
                  + f"; JAX / best torch {w['jax_x_best_torch']:.2f}")
    print(f"load average (1 min) during the run: {result['load_average']}")
    _bench.write("torch_baseline", result,
                 out=None if args.out is None else pathlib.Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
