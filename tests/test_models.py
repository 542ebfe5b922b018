"""Model pieces: encoder family, MLP heads, FSQ, augmentations, LAPO/LAOM, probes, save/load."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from laom.models import LAOM, LAPO, load_lam, save_model
from laom.models.augment import CHAINS, Augmenter, homography_from_points, sample_homographies, warp
from laom.models.encoder import ResNetDecoder, ResNetEncoder
from laom.models.fsq import FSQ
from laom.models.mlp import ConditionedMLP
from laom.models.probe import fit_linear_probe


def test_encoder_family_shapes_and_init():
    enc = ResNetEncoder((9, 64, 64), scale=2, num_res_blocks=2)
    assert enc.out_shape == (64, 8, 8) and enc.out_dim == 64 * 64
    assert enc(torch.zeros(2, 9, 64, 64)).shape == (2, 64, 8, 8)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 * (1 + 2 * 2)  # per stage: downsampling conv + 2 blocks x 2 convs
    dec = ResNetDecoder(64, 9, scale=2, num_res_blocks=1)
    y = dec(torch.zeros(2, 64, 8, 8))
    assert y.shape == (2, 9, 64, 64) and y.abs().max() <= 1


def test_laom_init_is_orthogonal_with_zero_bias():
    m = LAOM((9, 32, 32), latent_dim=16, head_dim=32)
    w = m.encoder.stages[0][0].weight.flatten(1)  # [16, 81]: orthonormal rows
    torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)
    assert all(
        float(b.detach().abs().max()) == 0
        for n, b in m.named_parameters()
        if n.endswith("bias") and "norm" not in n
    )


def test_conditioned_mlp_equals_concatenating_the_condition_at_every_block():
    torch.manual_seed(0)
    mlp = ConditionedMLP(in_dim=5, cond_dim=3, out_dim=4, hidden_dim=8, num_blocks=3)
    x, c = torch.randn(6, 5), torch.randn(6, 3)
    # The reference form: block_i(Linear_i(concat(h, c))), with Linear_i's weight = [W_h | W_c].
    h = x
    for i in range(3):
        w_c = mlp.cond_proj.weight[8 * i : 8 * (i + 1)]
        b = mlp.cond_proj.bias[8 * i : 8 * (i + 1)]
        w = torch.cat([mlp.h_proj[i].weight, w_c], dim=1)
        h = mlp.blocks[i](F.linear(torch.cat([h, c], dim=1), w, b))
    torch.testing.assert_close(mlp(x, c), mlp.out(h))
    idm = ConditionedMLP(in_dim=0, cond_dim=3, out_dim=4, hidden_dim=8)
    assert idm(None, c).shape == (6, 4)


@pytest.mark.parametrize("levels", [(2, 2, 4), (3, 5), (8,)])
def test_fsq_codes_take_exactly_the_configured_number_of_values(levels):
    q = FSQ(levels, dim=7)
    z = torch.randn(20000, 7) * 4
    out = q(z)
    for i in range(7):
        assert torch.unique(out[:, i]).numel() == levels[i % len(levels)]
        assert torch.unique(q.codes(z)[:, i]).numel() == levels[i % len(levels)]
    assert out.abs().max() <= 1
    z.requires_grad_(True)
    q(z).sum().backward()  # straight-through: gradients flow
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_augment_identity_and_shapes():
    x = torch.rand(4, 9, 16, 16)
    eye = torch.eye(3, dtype=torch.float64).repeat(4, 1, 1)
    torch.testing.assert_close(warp(x, eye), x, atol=1e-5, rtol=0)
    aug = Augmenter(16)
    y = aug(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    # "none" samples are left untouched, the others changed
    choice, _ = sample_homographies(4, 16, torch.Generator().manual_seed(0))
    for i, c in enumerate(choice.tolist()):
        same = torch.allclose(y[i], x[i], atol=1e-5)
        assert same == (CHAINS[c] == ())


def test_augment_same_warp_for_all_stacked_frames_and_independent_per_image():
    frame = torch.rand(1, 3, 16, 16)
    x = frame.repeat(8, 3, 1, 1)  # 3 identical frames stacked, 8 identical images
    y = Augmenter(16)(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(y[:, :3], y[:, 3:6])
    torch.testing.assert_close(y[:, :3], y[:, 6:])
    assert not all(torch.allclose(y[0], y[i]) for i in range(1, 8))


def test_shift_is_an_integer_translation_with_replicated_border():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    m = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    m[0, 0, 2] = 2.0  # move content 2 px right
    y = warp(x, m)[0, 0]
    torch.testing.assert_close(y[:, 2:], x[0, 0, :, :-2])
    torch.testing.assert_close(y[:, 0], x[0, 0, :, 0])  # replicated edge


def test_random_shift_moves_whole_stacks_by_whole_pixels():
    from laom.models.augment import RandomShift

    x = torch.rand(16, 6, 12, 12)
    y = RandomShift(3)(x, torch.Generator().manual_seed(0))
    for i in range(16):  # each image equals its original moved by some (dx, dy) in [-3, 3]
        hits = []
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                rows = (torch.arange(12) - dy).clamp(0, 11)
                cols = (torch.arange(12) - dx).clamp(0, 11)
                if torch.allclose(y[i], x[i][:, rows][:, :, cols], atol=1e-5):
                    hits.append((dx, dy))
        assert hits, i
    assert not torch.allclose(y, x)
    with pytest.raises(ValueError):
        RandomShift(0)


def test_rotation_by_90_degrees_matches_rot90():
    x = torch.rand(1, 3, 10, 10)
    theta = math.pi / 2
    m = torch.tensor([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]],
                     dtype=torch.float64).unsqueeze(0)  # fmt: skip
    y = warp(x, m)
    assert min((y - torch.rot90(x, k, dims=(2, 3))).abs().max().item() for k in (1, -1)) < 1e-4


def test_homography_from_points_maps_corners():
    src = torch.tensor([[[-1.0, -1], [1, -1], [1, 1], [-1, 1]]], dtype=torch.float64)
    dst = src * torch.tensor([[[0.8, 0.9]]], dtype=torch.float64) + 0.1
    h = homography_from_points(src, dst)
    pts = torch.cat([src, torch.ones(1, 4, 1, dtype=torch.float64)], -1) @ h[0].T
    torch.testing.assert_close(pts[..., :2] / pts[..., 2:], dst)


def test_perspective_moves_corners_inward_by_at_most_the_distortion():
    _, h = sample_homographies(2000, 64, torch.Generator().manual_seed(0))
    choice, _ = sample_homographies(2000, 64, torch.Generator().manual_seed(0))
    only_p = torch.tensor([CHAINS[c] == ("perspective",) for c in choice.tolist()])
    half = (64 + 60) / 2
    corners = torch.tensor([[-half, -half, 1.0], [half, half, 1.0]], dtype=torch.float64)
    mapped = torch.einsum("bij,pj->bpi", h[only_p], corners)
    mapped = mapped[..., :2] / mapped[..., 2:]
    inward = (corners[:, :2].abs() - mapped.abs()).flatten()
    assert (inward >= -1e-6).all() and (inward <= 0.5 * half + 1e-6).all()


def test_ema_update_math():
    m = LAOM((9, 16, 16), latent_dim=8, head_dim=16, target_tau=0.1)
    online = [p.detach().clone() for p in m.encoder.parameters()]
    before = [p.detach().clone() for p in m.target_encoder.parameters()]
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    m.update_target()
    for t, b, o in zip(m.target_encoder.parameters(), before, online, strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * (o + 1.0))
    assert not any(p.requires_grad for p in m.target_encoder.parameters())
    stopgrad = LAOM((9, 16, 16), latent_dim=8, head_dim=16, target="stopgrad")
    assert stopgrad.target_encoder is None
    stopgrad.update_target()  # no-op


def test_laom_loss_shapes_gradients_and_detached_fdm_input():
    torch.manual_seed(0)
    m = LAOM((9, 16, 16), latent_dim=8, head_dim=16, action_dim=2, label_coef=0.5)
    x = [torch.rand(4, 9, 16, 16) * 2 - 1 for _ in range(3)]
    labeled = (torch.rand(3, 9, 16, 16), torch.rand(3, 9, 16, 16), torch.randn(3, 2))
    loss, metrics = m.loss(*x, labeled)
    torch.testing.assert_close(metrics["loss"], metrics["fdm_loss"] + 0.5 * metrics["action_loss"])
    loss.backward()
    assert m.action_head.weight.grad is not None and m.encoder.stages[0][0].weight.grad is not None
    assert all(p.grad is None for p in m.target_encoder.parameters())
    assert m.latent_action(x[0], x[1]).shape == (4, 8)
    # FDM input is stop-grad: the FDM loss alone gives the encoder gradient only via the IDM path.
    m.zero_grad()
    e_t = m.embed(x[0])
    m.fdm(e_t.detach(), torch.randn(4, 8)).sum().backward()
    assert m.encoder.stages[0][0].weight.grad is None


def test_bf16_channels_last_matches_fp32_and_embeddings_are_shared():
    torch.manual_seed(0)
    m = LAOM((9, 16, 16), latent_dim=8, head_dim=16, action_dim=2)
    x, y = torch.rand(4, 9, 16, 16) * 2 - 1, torch.rand(4, 9, 16, 16) * 2 - 1
    z, emb = m.latent_action_and_embedding(x, y)
    torch.testing.assert_close(z, m.latent_action(x, y))
    torch.testing.assert_close(emb, m.embed(x))
    fast = LAOM((9, 16, 16), latent_dim=8, head_dim=16, action_dim=2)
    fast.load_state_dict(m.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_fast = fast.latent_action(x, y)
        loss, _ = fast.loss(x, x, y, (x, y, torch.zeros(4, 2)))
    assert z_fast.dtype == torch.bfloat16
    torch.testing.assert_close(z_fast.float(), z, atol=0.1, rtol=0.05)
    loss.backward()
    assert fast.encoder.stages[0][0].weight.grad.is_contiguous(memory_format=torch.channels_last)


def test_lapo_reconstructs_pixels_and_quantizes():
    m = LAPO((9, 16, 16), latent_dim=6, fsq_levels=(2, 2, 4))
    x = [torch.rand(3, 9, 16, 16) * 2 - 1 for _ in range(3)]
    z = m.latent_action(x[0], x[2])
    assert z.shape == (3, 6) and set(torch.unique(z[:, 0]).tolist()) <= {-1.0, 0.0}
    assert m.predict_next(x[0], z).shape == (3, 9, 16, 16)
    loss, metrics = m.loss(*x)
    loss.backward()
    assert metrics["fdm_loss"] > 0 and m.idm_encoder.stages[0][0].weight.grad is not None
    plain = LAPO((9, 16, 16), latent_dim=6)
    assert plain.fsq is None


@pytest.fixture
def one_thread():
    """One intra-op thread: a few dozen steps of a conv net stall for minutes when OpenMP
    threads compete with other work for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _lapo_labels(**kwargs) -> LAPO:
    return LAPO((9, 16, 16), latent_dim=6, fsq_levels=(2, 2, 4), channels=(8, 8, 8), action_dim=2, **kwargs)


def test_lapo_labels_loss_adds_the_action_term_and_keeps_labels_out_of_the_fdm(one_thread):
    """LAPO+supervision: the labelled pairs reach the IDM (and its action head), never
    the pixel FDM, whose gradients are those of the same unlabelled batch without labels."""
    torch.manual_seed(0)
    m = _lapo_labels(label_coef=0.5)
    x = [torch.rand(4, 9, 16, 16) * 2 - 1 for _ in range(3)]
    labeled = (torch.rand(3, 9, 16, 16) * 2 - 1, torch.rand(3, 9, 16, 16) * 2 - 1, torch.randn(3, 2))
    loss, metrics = m.loss(*x, labeled)
    assert list(metrics) == ["loss", "fdm_loss", "action_loss"]
    torch.testing.assert_close(metrics["loss"], metrics["fdm_loss"] + 0.5 * metrics["action_loss"])
    assert m.last_latent.shape == (4, 6)  # the online probe sees the unlabelled batch only
    loss.backward()
    with_labels = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    m.loss(*x)[0].backward()
    without = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert with_labels["action_head.weight"].abs().sum() > 0 and "action_head.weight" not in without
    # The action loss reaches the IDM's encoder ...
    assert not torch.equal(with_labels["idm_encoder.stages.0.0.weight"], without["idm_encoder.stages.0.0.weight"])
    # ... and nothing of the FDM: its encoder, z's projection and the pixel decoder.
    fdm = [n for n in without if n.startswith(("fdm_encoder.", "action_to_map.", "decoder."))]
    assert fdm and all(torch.allclose(with_labels[n], without[n], atol=1e-6) for n in fdm)


def test_lapo_labels_action_loss_falls_through_the_quantised_latent(one_thread):
    """Training on LAPO+supervision's whole loss, the head on FSQ's straight-through z
    learns the labelled actions, and the action loss reaches the IDM's encoder."""
    torch.manual_seed(0)
    m = _lapo_labels(label_coef=1.0)
    g = torch.Generator().manual_seed(1)
    obs, nxt, future, lab_obs, lab_future = (torch.rand(8, 9, 16, 16, generator=g) * 2 - 1 for _ in range(5))
    actions = torch.randn(8, 2, generator=g)
    optim = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, metrics = m.loss(obs, nxt, future, (lab_obs, lab_future, actions))
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(metrics["action_loss"]))
    assert losses[-1] < 0.5 * losses[0], losses
    m.zero_grad()
    F.mse_loss(m.action_head(m.latent_action(lab_obs, lab_future)), actions).backward()
    assert m.idm_encoder.stages[0][0].weight.grad.abs().sum() > 0  # through FSQ's straight-through round


def test_lapo_without_labels_has_no_head_and_refuses_a_labelled_batch():
    m = LAPO((9, 16, 16), latent_dim=6)
    assert m.action_head is None and "action_head.weight" not in m.state_dict()
    x = [torch.rand(2, 9, 16, 16) for _ in range(3)]
    assert list(m.loss(*x)[1]) == ["loss", "fdm_loss"]
    with pytest.raises(AssertionError, match="no action head"):
        m.loss(*x, (x[0], x[1], torch.zeros(2, 2)))


@pytest.mark.parametrize("cls,kwargs", [(LAOM, {"latent_dim": 8, "head_dim": 16, "action_dim": 3}),
                                        (LAPO, {"latent_dim": 6, "fsq_levels": (2, 2, 4)}),
                                        (LAPO, {"latent_dim": 6, "fsq_levels": (2, 2, 4), "action_dim": 3,
                                                "label_coef": 0.25})])  # fmt: skip
def test_save_load_round_trip(tmp_path, cls, kwargs):
    torch.manual_seed(0)
    m = cls((9, 16, 16), **kwargs)
    save_model(tmp_path / "lam.pt", m, {"method": "x", "img_hw": 16})
    loaded, meta = load_lam(tmp_path)
    assert meta.img_hw == 16 and not loaded.training
    x, y = torch.rand(2, 9, 16, 16), torch.rand(2, 9, 16, 16)
    m.eval()
    torch.testing.assert_close(loaded.latent_action(x, y), m.latent_action(x, y))
    for key, value in m.state_dict().items():  # the action head too
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.kwargs == m.kwargs


def test_a_lapo_file_from_before_the_action_head_still_loads(tmp_path):
    """LAPO files written before LAPO took ``action_dim``/``label_coef`` lack them in their
    kwargs: they load as LAPO without a head."""
    torch.manual_seed(0)
    m = LAPO((9, 16, 16), latent_dim=6, fsq_levels=(2, 2, 4))
    old_kwargs = {k: v for k, v in m.kwargs.items() if k not in ("action_dim", "label_coef")}
    payload = {"format": "laom-lam/1", "class": "lapo", "kwargs": old_kwargs, "state_dict": m.state_dict(),
               "meta": {"method": "lapo"}}  # fmt: skip
    torch.save(payload, tmp_path / "lam.pt")
    loaded, meta = load_lam(tmp_path / "lam.pt")
    assert loaded.action_head is None and meta.method == "lapo"
    x, y = torch.rand(2, 9, 16, 16), torch.rand(2, 9, 16, 16)
    torch.testing.assert_close(loaded.latent_action(x, y), m.eval().latent_action(x, y))


def test_an_unknown_lam_class_is_one_line(tmp_path):
    from laom.errors import LaomError

    torch.save({"format": "laom-lam/1", "class": "vq", "kwargs": {}, "state_dict": {}, "meta": {}}, tmp_path / "x.pt")
    with pytest.raises(LaomError, match="unknown class 'vq' \\(expected lapo, laom\\)"):
        load_lam(tmp_path / "x.pt")


def test_linear_probe_recovers_a_linear_map_and_reports_baseline():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 10, generator=g)
    x = torch.randn(500, 10, generator=g) * torch.linspace(0.1, 10, 10)
    y = x @ w.T + 0.5
    xt = torch.randn(200, 10, generator=g)
    r = fit_linear_probe(x, y, xt, xt @ w.T + 0.5)
    assert r.mse < 1e-6 and r.r2 > 0.999
    wide = fit_linear_probe(
        torch.randn(20, 50), torch.randn(20, 2), torch.randn(30, 50), torch.randn(30, 2)
    )
    assert (
        math.isfinite(wide.mse) and wide.baseline_mse > 0
    )  # dual form (more features than samples)


@pytest.mark.parametrize("rows", [7, 64, 4096])
def test_linear_probe_in_row_blocks_is_the_whole_fit(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """The probe sums its Gram matrix and predicts over blocks of rows (memory): any block
    size gives the fit of the whole matrix, partial last block included."""
    from laom.models import probe

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(301, 12, generator=gen) * torch.linspace(0.5, 4, 12) + 2
    y = x[:, :3] @ torch.randn(3, 2, generator=gen) + 0.1 * torch.randn(301, 2, generator=gen)
    monkeypatch.setattr(probe, "PROBE_ROWS", rows)
    result = fit_linear_probe(x[:250], y[:250], x[250:], y[250:], ridge=1e-3)
    xd, yd = x.double(), y.double()
    mean, std = xd[:250].mean(0), xd[:250].std(0)
    xs = (xd[:250] - mean) / std
    w = torch.linalg.solve(xs.T @ xs + 1e-3 * 250 * torch.eye(12, dtype=torch.float64), xs.T @ (yd[:250] - yd[:250].mean(0)))
    pred = (xd[250:] - mean) / std @ w + yd[:250].mean(0)
    assert result.mse == pytest.approx(float(((pred - yd[250:]) ** 2).mean()), rel=1e-9)
    assert torch.allclose(result.predict(x[250:]), pred, rtol=1e-9, atol=1e-12)


def test_linear_probe_leaves_its_inputs_alone_and_matches_the_out_of_place_fit() -> None:
    """The probe standardises a copy in place (memory): a float64 input is not changed, and
    the fit is the textbook one on (x - mean) / std."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=gen, dtype=torch.float64) * 3 + 1
    noise = 0.1 * torch.randn(200, 3, generator=gen, dtype=torch.float64)
    y = x[:, :2] @ torch.randn(2, 3, generator=gen, dtype=torch.float64) + noise
    before = x.clone()
    result = fit_linear_probe(x[:150], y[:150], x[150:], y[150:], ridge=1e-3)
    assert torch.equal(x, before)
    xs = (x[:150] - x[:150].mean(0)) / x[:150].std(0)
    yc = y[:150] - y[:150].mean(0)
    w = torch.linalg.solve(xs.T @ xs + 1e-3 * 150 * torch.eye(8, dtype=torch.float64), xs.T @ yc)
    pred = (x[150:] - x[:150].mean(0)) / x[:150].std(0) @ w + y[:150].mean(0)
    assert result.mse == pytest.approx(float(((pred - y[150:]) ** 2).mean()), rel=1e-9)
