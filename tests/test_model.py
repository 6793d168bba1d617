"""The model: architectures from a registry (df, liae, SAEHD's u/d/t variants), the optimiser step's
options (LR dropout, clipping), the optional adversaries, stage changes on resume, and a NaN on one
DDP rank skipped by both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from faceswap.model.discriminators import PatchDiscriminator, adversarial_terms
from faceswap.model.losses import LossWeights, SwapLoss
from faceswap.model.module import weights_fingerprint
from faceswap.model.networks import (
    ARCHITECTURES,
    ArchSpec,
    DFNetwork,
    LIAENetwork,
    ModelConfig,
    SwapNetwork,
    build_network,
)

SMALL = dict(e_dims=8, ae_dims=32, d_dims=8, d_mask_dims=4)


def test_the_registry_builds_one_class_per_architecture():
    assert set(ARCHITECTURES) == {"df", "liae"}
    assert type(build_network(ModelConfig("df", 64, **SMALL))) is DFNetwork
    assert type(SwapNetwork(ModelConfig("liae-ud", 64, **SMALL))) is LIAENetwork  # the old constructor
    assert ArchSpec.parse("df-tdu") == ArchSpec("df", "udt")
    for bad in ("dfx", "df-x", "df-uu", "liae-q"):
        with pytest.raises(ValueError):
            ArchSpec.parse(bad)
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig("df-d", 80).validate()


def test_plain_architectures_keep_their_state_dict_keys():
    """Models trained before the split load into the new classes unchanged."""
    df = build_network(ModelConfig("df", 64, **SMALL)).state_dict()
    liae = build_network(ModelConfig("liae", 64, **SMALL)).state_dict()
    assert {k.split(".")[0] for k in df} == {"encoder", "inter", "decoder_a", "decoder_b"}
    assert {k.split(".")[0] for k in liae} == {"encoder", "inter_ab", "inter_b", "decoder"}
    assert "encoder.net.3.0.weight" in df and "inter.up.0.weight" in df and "decoder_a.rgb.6.weight" in df
    assert "decoder.mask.3.weight" in liae and len(df) == 70 and len(liae) == 48


@pytest.mark.parametrize("name", ["df", "liae", "df-u", "df-d", "df-t", "df-udt", "liae-ud", "liae-udt"])
@pytest.mark.parametrize("resolution", [64, 128])
def test_every_variant_renders_both_subjects_at_its_resolution(name, resolution):
    network = build_network(ModelConfig(name, resolution, **SMALL)).eval()
    x = torch.rand(2, 3, resolution, resolution)
    with torch.no_grad():
        for identity in ("a", "b"):
            rgb, mask = network.swap(x, identity)
            assert rgb.shape == (2, 3, resolution, resolution) and mask.shape == (2, 1, resolution, resolution)
            assert torch.equal(network.reconstruct(x, identity)[0], rgb)
    with pytest.raises(ValueError):
        network(x, "b_self")


def test_liae_renders_as_a_without_inter_b():
    network = build_network(ModelConfig("liae", 64, **SMALL)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ab = network.inter_ab(network.encoder(x))
        as_a = network.decoder(torch.cat([ab, ab], dim=1))[0]
        as_b = network.decoder(torch.cat([ab, network.inter_b(network.encoder(x))], dim=1))[0]
        assert torch.equal(network.swap(x, "a")[0], as_a) and torch.equal(network.reconstruct(x, "b")[0], as_b)


def _batch(resolution: int = 64, n: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)
    ones = torch.ones(n, 1, resolution, resolution)
    return {
        s: {
            "input": torch.rand(n, 3, resolution, resolution, generator=g),
            "target": torch.rand(n, 3, resolution, resolution, generator=g),
            "mask": ones,
            "weight": ones,
            "priority": torch.zeros(n, 1, resolution, resolution),
        }
        for s in ("a", "b")
    }


def _items(resolution: int = 64) -> list[dict]:
    batch = _batch(resolution)
    return [{s: {k: v[i] for k, v in batch[s].items()} for s in batch} for i in range(2)]


def _trainer(max_steps: int):
    import pytorch_lightning as pl

    return pl.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _fit(module, steps: int = 1, resume: Path | None = None):
    """A real Trainer over a fixed batch, CPU; `steps` counts from the checkpoint when resuming."""
    from torch.utils.data import DataLoader

    trainer = _trainer(steps)
    data = DataLoader(_items(module.config.resolution) * steps, batch_size=2)
    trainer.fit(module, data, ckpt_path=str(resume) if resume else None)
    return trainer


def _module(**options):
    from faceswap.model.module import SwapModule

    return SwapModule("df", 64, **SMALL, channels_last=False, preview_every=0, **options)


def test_lr_dropout_updates_only_its_share_of_the_weights():
    for keep in (1.0, 0.3):
        module = _module(lr=1e-3, lr_dropout=keep)
        before = {k: v.clone() for k, v in module.network.state_dict().items()}
        _fit(module)
        changed = torch.cat([(v != before[k]).flatten().float() for k, v in module.network.state_dict().items()])
        assert changed.mean().item() == pytest.approx(keep, abs=0.03)


def test_gradient_clipping_bounds_the_update():
    steps = {}
    for clip in (0.0, 1e-3):
        torch.manual_seed(0)
        module = _module(lr=1e-3, clip_grad=clip)
        module.configure_optimizers = lambda m=module: torch.optim.SGD(m.network.parameters(), lr=1.0)
        before = torch.cat([p.detach().flatten().clone() for p in module.network.parameters()])
        _fit(module)
        after = torch.cat([p.detach().flatten() for p in module.network.parameters()])
        steps[clip] = float((after - before).norm())
    assert steps[1e-3] == pytest.approx(1e-3, rel=1e-3) and steps[0.0] > 10 * steps[1e-3]


def test_adversarial_terms_train_each_side_only_through_its_own_loss():
    disc = PatchDiscriminator(64, dims=4)
    generator = torch.nn.Conv2d(3, 3, 1)
    real, fake = torch.rand(2, 3, 64, 64), generator(torch.rand(2, 3, 64, 64))
    g_loss, d_loss = adversarial_terms(disc, real, fake)
    g_loss.backward(retain_graph=True)
    assert generator.weight.grad is not None and all(p.grad is None for p in disc.parameters())
    generator.zero_grad()
    d_loss.backward()
    assert all(p.grad is not None for p in disc.parameters()) and generator.weight.grad is None


def test_adversaries_train_and_leave_the_fingerprint_to_the_network():
    module = _module(gan_power=0.1, true_face_power=0.01, lr=1e-3)
    assert set(module.discriminators) == {"patch", "code"}
    disc_before = [p.clone() for p in module.discriminators.parameters()]
    trainer = _fit(module, steps=2)
    assert trainer.global_step == 2
    assert all(not torch.equal(a, b) for a, b in zip(disc_before, module.discriminators.parameters(), strict=True))
    assert not any(k.startswith("discriminators") for k in module.network.state_dict())
    fingerprint = weights_fingerprint(module.network)
    with torch.no_grad():
        next(module.discriminators.parameters()).add_(1.0)
    assert weights_fingerprint(module.network) == fingerprint
    with pytest.raises(ValueError, match="df"):
        from faceswap.model.module import SwapModule

        SwapModule("liae", 64, **SMALL, true_face_power=0.1)


def test_resume_into_a_gan_stage_and_back(tmp_path):
    """A checkpoint of the warp stage resumes with the GAN on (fresh discriminator, the autoencoder's
    optimiser state kept), and a GAN checkpoint resumes with it off."""
    _fit(_module(lr=1e-3), steps=2).save_checkpoint(tmp_path / "plain.ckpt")
    gan = _module(lr=1e-3, gan_power=0.1)
    resumed = _fit(gan, steps=4, resume=tmp_path / "plain.ckpt")
    assert resumed.global_step == 4 and len(resumed.optimizers[0].param_groups) == 2
    assert resumed.optimizers[0].state[next(gan.network.parameters())]["step"] == 4  # the moments carried over
    resumed.save_checkpoint(tmp_path / "gan.ckpt")
    back = _fit(_module(lr=1e-3), steps=5, resume=tmp_path / "gan.ckpt")
    assert back.global_step == 5 and len(back.optimizers[0].param_groups) == 1


def test_loss_trains_the_weight_region_and_fits_the_mask_to_the_hull():
    loss = SwapLoss(LossWeights(), 64)
    target = torch.rand(1, 3, 64, 64)
    pred = target.clone()
    pred[..., :8] = 0.0  # wrong only in a band outside the hull
    hull = torch.zeros(1, 1, 64, 64)
    hull[..., 16:48, 16:48] = 1.0
    ring = hull.clone()
    ring[..., :16] = 1.0
    without = loss(pred, hull, target, hull, torch.zeros_like(hull))
    with_ring = loss(pred, hull, target, hull, torch.zeros_like(hull), ring)
    assert without["l1"][0] == 0 and with_ring["l1"][0] > 0 and with_ring["mask"][0] == 0


@pytest.mark.slow
def test_a_nan_on_one_ddp_rank_is_skipped_by_both(tmp_path):
    """CPU DDP (gloo), two ranks; rank 1's fourth batch is poisoned. Both ranks must skip that step
    together, recover, and finish with the same weights (returning None from training_step made
    Lightning stop rank 1 alone)."""
    script = Path(__file__).with_name("ddp_nan_run.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "8"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in ranks] == [8, 8]
    assert [r["recoveries"] for r in ranks] == [1, 1]
    assert ranks[0]["fingerprint"] == ranks[1]["fingerprint"] and all(r["finite"] for r in ranks)


def test_lr_schedule_warms_up_then_decays_to_its_floor():
    from faceswap.model.schedule import LRSchedule

    schedule = LRSchedule(warmup=10, decay="cosine", floor=0.1)
    rates = [schedule.factor(step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(rates[9:], rates[10:], strict=False))  # falls after the warm-up
    assert schedule.factor(100, 100) == pytest.approx(0.1) and schedule.factor(55, 100) == pytest.approx(0.55)
    assert schedule.factor(50, None) == 1.0  # no planned end: no decay
    assert LRSchedule().factor(7, 100) == 1.0
    with pytest.raises(ValueError):
        LRSchedule(decay="step")


def test_the_module_steps_at_the_scheduled_rate_and_a_nan_halves_it():
    module = _module(lr=1e-3, lr_warmup=2, lr_decay="cosine", lr_floor=0.1)
    trainer = _fit(module, steps=4)
    # the last step (index 3) of a 4-step run: cosine at 1/2 of the way from the warm-up's end
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    module = _module(lr=1e-3, lr_warmup=2, lr_decay="cosine", lr_floor=0.1, inject_nan_at_step=1)
    trainer = _fit(module, steps=4)
    assert module.recoveries == 1 and module.lr_scale == 0.5
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.5e-3 * (0.1 + 0.9 * 0.5))


def test_priority_ramp_scales_the_priority_term():
    from faceswap.model.schedule import PriorityRamp

    ramp = PriorityRamp(share=0.5, start=0.2)
    assert ramp.factor(0, 100) == pytest.approx(0.2) and ramp.factor(25, 100) == pytest.approx(0.6)
    assert ramp.factor(50, 100) == ramp.factor(90, 100) == 1.0 and PriorityRamp().factor(0, 100) == 1.0
    loss = SwapLoss(LossWeights(), 64)
    target, pred = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    ones = torch.ones(1, 1, 64, 64)
    full, half = loss(pred, ones, target, ones, ones), loss(pred, ones, target, ones, ones, priority_scale=0.5)
    assert half["priority"][1] == pytest.approx(0.5 * full["priority"][1]) and half["priority"][0] == full["priority"][0]


def test_the_loss_is_float32_under_bfloat16_autocast():
    """The GPU presets train in bf16-mixed: SSIM's variances (differences of nearly equal means)
    must not be computed in bfloat16, where a near-converged prediction's gradient is noise."""
    loss = SwapLoss(LossWeights(), 64)
    torch.manual_seed(0)
    target = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64), 5, 1, 2)
    near = (target + 0.005 * torch.randn_like(target)).clamp(0, 1)
    ones = torch.ones(2, 1, 64, 64)
    grads = []
    for autocast in (False, True):
        pred = near.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            terms = loss(pred, ones * 0.5, target, ones, ones)
        terms["dssim"][0].backward()
        grads.append((terms["dssim"][0].detach(), pred.grad.flatten()))
    (fp32, g32), (mixed, g16) = grads
    assert mixed.dtype == torch.float32 and mixed.item() == pytest.approx(fp32.item(), rel=1e-5)
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.999
