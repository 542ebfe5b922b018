"""One save/load for every model (laom.models.saving) and one atomic write (laom.outputs).

Each kind of model goes through ``save_model`` and comes back from ``load_model`` as the
same class with the same arguments, weights and outputs (as SB3 tests its algorithms'
save/load). Files written before the one format (tests/fixtures/main-8d8b0c8, made by
laom at commit 8d8b0c8 with tests/fixtures/make_saved_by_main.py) load through the same
functions and compute what they computed then, and a checkpoint of that time resumes to
the weights its run would have ended with.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from laom.errors import LaomError
from laom.models import LAOM, LAPO, MODEL_CLASSES, load_lam, load_model, save_model
from laom.models.idm import ActionIDM
from laom.models.policy import ActingPolicy, ActionDecoder, PixelPolicy
from laom.models.saving import MODEL_FORMAT, load_policy, load_policy_file, load_torch, save_torch
from laom.outputs import atomic_path, atomic_write_text
from laom.training.optim import make_optimizer, make_scheduler, optimizer_step
from laom.training.rundir import RunDir

FIXTURE = Path(__file__).parent / "fixtures" / "main-8d8b0c8"


def _load_fixture_inputs() -> ModuleType:
    """tests/fixtures/saved_by_main_inputs.py: what make_saved_by_main.py, beside it, ran
    the fixture's models on (loaded by path: tests/ is no package)."""
    spec = importlib.util.spec_from_file_location("saved_by_main_inputs", FIXTURE.parent / "saved_by_main_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


saved_by_main = _load_fixture_inputs()
# The fixture's sizes, which the round trips below use too.
HW, STACK, ACTIONS, LATENT = saved_by_main.HW, saved_by_main.STACK, saved_by_main.ACTIONS, saved_by_main.LATENT
OBS = (3 * STACK, HW, HW)
TINY = {"channels": (2, 4), "num_res_blocks": 1}


def frames(seed: int, n: int = 4) -> torch.Tensor:
    """A batch of frame stacks in [-1, 1], as the models take them."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *OBS, generator=g) * 2 - 1


def outputs(model: nn.Module) -> torch.Tensor:
    """What a model of any kind computes on fixed frames (latent action, action)."""
    obs, nxt = frames(0), frames(1)
    with torch.no_grad():
        if isinstance(model, (LAOM, LAPO)):
            return model.latent_action(obs, nxt)
        if isinstance(model, ActionIDM):
            return model(obs, nxt)
        if isinstance(model, ActionDecoder):
            return model(frames(2).flatten(1)[:, :LATENT])
        return model(obs)


# One or more configurations of every kind a model file can hold.
MODELS: list[tuple[str, Any]] = [
    ("laom", lambda: LAOM(OBS, latent_dim=LATENT, head_dim=8, head_blocks=1, **TINY)),
    ("laom", lambda: LAOM(OBS, latent_dim=LATENT, head_dim=8, head_blocks=2, target="stopgrad", action_dim=ACTIONS,
                          **TINY)),  # fmt: skip
    ("lapo", lambda: LAPO(OBS, latent_dim=LATENT, fsq_levels=(2, 3), **TINY)),
    ("lapo", lambda: LAPO(OBS, latent_dim=LATENT, action_dim=ACTIONS, label_coef=0.5, **TINY)),
    ("pixel-policy", lambda: PixelPolicy(OBS, LATENT, **TINY)),
    ("pixel-policy", lambda: PixelPolicy(OBS, ACTIONS, pooling="flatten", hidden_dim=8, **TINY)),
    ("action-decoder", lambda: ActionDecoder(LATENT, ACTIONS, hidden_dim=8, num_layers=2)),
    ("acting-policy", lambda: ActingPolicy(PixelPolicy(OBS, LATENT, **TINY), ActionDecoder(LATENT, ACTIONS, 8), {})),
    ("acting-policy", lambda: ActingPolicy(PixelPolicy(OBS, ACTIONS, relu_before_pool=False, **TINY), None, {})),
    ("action-idm", lambda: ActionIDM(OBS, ACTIONS, head_dim=8, **TINY)),
    ("action-idm", lambda: ActionIDM(OBS, ACTIONS, head_dim=8, arch="shared", head_blocks=1, **TINY)),
]


def test_every_kind_has_a_round_trip_case() -> None:
    assert {kind for kind, _ in MODELS} == set(MODEL_CLASSES)


@pytest.mark.parametrize("case", range(len(MODELS)))
def test_round_trip(case: int, tmp_path: Path) -> None:
    kind, build = MODELS[case]
    torch.manual_seed(case)
    model = build().eval()
    meta = {"method": "x", "img_hw": HW, "frame_stack": STACK, "nested": {"a": [1, 2]}}
    save_model(tmp_path / "model.pt", model, meta)
    payload = torch.load(tmp_path / "model.pt", weights_only=False)
    assert payload["format"] == MODEL_FORMAT and payload["class"] == kind == model.kind

    torch.manual_seed(1000)  # a rebuild draws other initial weights: only the file's may survive
    loaded, loaded_meta = load_model(tmp_path / "model.pt")
    assert type(loaded) is type(model) and not loaded.training
    assert loaded_meta == meta and loaded.kwargs == model.kwargs
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(outputs(loaded), outputs(model))


def test_saving_leaves_no_temporary_file_and_replaces_the_old(tmp_path: Path) -> None:
    torch.manual_seed(0)
    first, second = ActionDecoder(LATENT, ACTIONS, 8), ActionDecoder(LATENT, ACTIONS, 8)
    save_model(tmp_path / "policy.pt", first, {"n": 1})
    save_model(tmp_path / "policy.pt", second, {"n": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["policy.pt"]
    loaded, meta = load_model(tmp_path / "policy.pt")
    assert meta == {"n": 2} and torch.equal(loaded.net[0].weight, second.net[0].weight)


def test_only_model_classes_are_saved(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Linear is not a model laom saves"):
        save_model(tmp_path / "x.pt", nn.Linear(2, 2), {})

    class Wider(ActionDecoder):  # a subclass's extra state would be lost on rebuild
        pass

    with pytest.raises(TypeError, match="Wider"):
        save_model(tmp_path / "x.pt", Wider(2, 2), {})
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- loading errors


def test_what_is_not_a_model_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("not a torch file")
    with pytest.raises(LaomError, match=r"--policy .*notes.pt: unreadable \(\w+\); expected a run folder"):
        load_policy_file(tmp_path / "notes.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "dict.pt")
    with pytest.raises(LaomError, match=f"model .*dict.pt: not a model file \\(expected format {MODEL_FORMAT}\\)"):
        load_model(tmp_path / "dict.pt")


def test_a_model_of_another_kind_is_named(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_model(tmp_path / "lam.pt", LAPO(OBS, latent_dim=LATENT, **TINY), {"method": "lapo"})
    with pytest.raises(LaomError, match="--policy .*lam.pt: holds a lapo model \\(expected pixel-policy, acting-policy\\)"):
        load_policy_file(tmp_path / "lam.pt")
    save_model(tmp_path / "policy.pt", PixelPolicy(OBS, LATENT, **TINY), {})
    with pytest.raises(LaomError, match="latent action model .*policy.pt: holds a pixel-policy model"):
        load_lam(tmp_path / "policy.pt")


def test_a_file_that_does_not_fit_the_class_is_one_line(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ActionDecoder(LATENT, ACTIONS, 8)
    payload = {"format": MODEL_FORMAT, "class": "action-decoder", "kwargs": {**model.kwargs, "dropout": 0.1},
               "state_dict": model.state_dict(), "meta": {}}  # fmt: skip
    torch.save(payload, tmp_path / "newer.pt")
    with pytest.raises(LaomError, match="newer.pt: does not fit this laom's action-decoder model .*dropout"):
        load_model(tmp_path / "newer.pt")
    payload = {**payload, "kwargs": {**model.kwargs, "hidden_dim": 9}}
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(LaomError, match="other.pt: does not fit this laom's action-decoder model"):
        load_model(tmp_path / "other.pt")


# --------------------------------------------------------------------------- files of 8d8b0c8


# The inputs make_saved_by_main.py ran its models on, from the module it took them from.
fixture_inputs, scaled = saved_by_main.inputs, saved_by_main.scaled


def same_output(actual: torch.Tensor | np.ndarray, saved: torch.Tensor) -> None:
    """Equal to float rounding: the expected outputs were computed on the machine that
    made the files (AVX2), and an AVX-512 machine's kernels round the last bits
    differently (2026-12-02); a wrongly loaded weight or layer is off by far more."""
    torch.testing.assert_close(torch.as_tensor(actual), saved, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURE / "expected.pt", weights_only=True)


@pytest.mark.parametrize("run,kind,method", [("lam-laom", "laom", "laom"), ("lam-lapo-labels", "lapo", "lapo-labels")])
def test_lams_of_8d8b0c8_load(run: str, kind: str, method: str, expected: dict[str, torch.Tensor]) -> None:
    model, meta = load_lam(FIXTURE / run)  # the run folder, as later stages give it
    assert model.kind == kind and meta.method == method and meta.frame_stack == STACK
    x = fixture_inputs()
    same_output(model.latent_action(scaled(x["obs"]), scaled(x["next_obs"])), expected[run])
    if method == "lapo-labels":
        assert model.action_head.out_features == ACTIONS and model.fsq is not None


@pytest.mark.parametrize("run,decoder", [("decoder", True), ("idm", False)])
def test_acting_policies_of_8d8b0c8_load(run: str, decoder: bool, expected: dict[str, torch.Tensor]) -> None:
    policy = load_policy(FIXTURE / run)
    assert isinstance(policy, ActingPolicy) and (policy.decoder is not None) == decoder
    assert policy.meta.outputs == "action" and policy.meta.img_hw == HW
    same_output(policy.act(fixture_inputs()["obs"].numpy()), expected[run])


def test_latent_policy_of_8d8b0c8_loads(expected: dict[str, torch.Tensor]) -> None:
    policy = load_policy_file(FIXTURE / "bc" / "latent_policy.pt")
    assert policy.decoder is None and policy.meta.outputs == "latent"
    same_output(policy.act(fixture_inputs()["obs"].numpy()), expected["bc"])


def test_idm_of_8d8b0c8_loads(expected: dict[str, torch.Tensor]) -> None:
    idm, meta = load_model(FIXTURE / "idm" / "idm" / "idm.pt", classes={ActionIDM.kind: ActionIDM})
    assert isinstance(idm, ActionIDM) and idm.kwargs["arch"] == "shared" and meta == {}
    x = fixture_inputs()
    with torch.no_grad():
        same_output(idm(scaled(x["obs"]), scaled(x["next_obs"])), expected["idm/idm"])


def test_a_checkpoint_of_8d8b0c8_resumes_to_the_uninterrupted_weights(expected: dict[str, torch.Tensor]) -> None:
    """The decoder stage's loop from the checkpoint at update 3 of 5 ends with the weights
    the uninterrupted run ended with when the checkpoint was written."""
    checkpoint = RunDir(FIXTURE / "decoder-killed").load_checkpoint()
    assert checkpoint is not None and checkpoint["update"] == 3
    torch.manual_seed(123)  # the checkpoint, not these initial weights, decides
    decoder = ActionDecoder(LATENT, ACTIONS, hidden_dim=4, num_layers=1)
    optimizer = make_optimizer(decoder, 1e-2)
    scheduler = make_scheduler(optimizer, 1, saved_by_main.TOTAL)
    decoder.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    x = fixture_inputs()
    for update in range(checkpoint["update"], saved_by_main.TOTAL):
        optimizer_step(saved_by_main.decoder_loss(decoder, x, update), decoder, optimizer, scheduler, None)
    for key, value in decoder.state_dict().items():
        same_output(value, expected[f"decoder-killed/{key}"])


def test_checkpoints_round_trip_and_refuse_a_torn_file(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.load_checkpoint() is None
    run.checkpoint_dir.mkdir()
    state = {"update": 7, "model": {"w": torch.arange(3.0)}, "signature": {"img_hw": HW}}
    run.save_checkpoint(state)
    back = run.load_checkpoint()
    assert back["update"] == 7 and torch.equal(back["model"]["w"], state["model"]["w"]) and back["signature"] == {"img_hw": HW}
    run.checkpoint_path.write_bytes(run.checkpoint_path.read_bytes()[:100])
    with pytest.raises(LaomError, match=r"checkpoint .*last.pt: unreadable \(\w+\); delete it to restart"):
        run.load_checkpoint()


# --------------------------------------------------------------------------- the one atomic write


def test_atomic_path_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".summary.tmp-") and tmp.suffix == ".json"
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    with atomic_path(target, durable=True) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing is seen before the block ends
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_atomic_path_builds_a_folder_aside(tmp_path: Path) -> None:
    out = tmp_path / "export"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(out) as tmp:
            (tmp / "data").mkdir(parents=True)
            raise KeyboardInterrupt
    assert not any(tmp_path.iterdir())
    with atomic_path(out) as tmp:
        (tmp / "data").mkdir(parents=True)
    assert (out / "data").is_dir() and [p.name for p in tmp_path.iterdir()] == ["export"]


def test_save_torch_of_a_failing_object_keeps_the_old_file(tmp_path: Path) -> None:
    class Unpicklable:
        def __reduce__(self) -> Any:
            raise RuntimeError("cannot pickle")

    save_torch({"update": 1}, tmp_path / "last.pt")
    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_torch({"update": 2, "bad": Unpicklable()}, tmp_path / "last.pt")
    assert load_torch(tmp_path / "last.pt", "checkpoint") == {"update": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
