"""tracin's TracInCP self-influence ranks the forget set as captum's `TracInCP` does, on the same model, data and checkpoints."""
from dataclasses import replace

import pytest
import torch
from scipy.stats import spearmanr

from erasus.selectors.tracin import tracin_scores

captum_influence = pytest.importorskip("captum.influence", reason="captum is not installed: pip install captum")


@pytest.fixture(scope="module")
def problem(make_small):
    "40 forget rows of the digits `random` scenario with the base model's training trajectory (5 checkpoints)."
    from erasus.bench import get_scenario
    sc = get_scenario("digits", "random", seed=0, trajectory=True)
    p = make_small(sc)
    return replace(p, trajectory=sc.problem.trajectory.subset(torch.arange(p.n_forget)), check_overlap=False)


def captum_self_influence(problem, tmp_path, layers=None):
    "captum's TracInCP self-influence of the forget set, from the trajectory's checkpoints saved to files."
    tr, paths = problem.trajectory, []
    for i, (ck, lr) in enumerate(zip(tr.checkpoints, tr.lrs)):
        paths.append(str(tmp_path / f"ckpt{i}.pt")); torch.save(dict(state=ck, lr=lr), paths[-1])
    def load(model, path):
        saved = torch.load(path); model.load_state_dict(saved["state"]); return saved["lr"]
    model = tr.model_at(problem.model, 0)   # a clone in eval mode: captum loads each checkpoint into it
    x, y = problem.forget
    tracer = captum_influence.TracInCP(model, torch.utils.data.TensorDataset(x, y), paths, checkpoints_load_func=load,
                                       layers=layers, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"), batch_size=64)
    return tracer.self_influence((x, y))


def test_self_influence_agrees_with_captum(problem, tmp_path):
    ours, theirs = tracin_scores(problem), captum_self_influence(problem, tmp_path)
    assert spearmanr(ours, theirs).statistic >= 0.9
    assert torch.allclose(ours, theirs.float(), rtol=1e-3, atol=1e-6)   # the same quantity, not just the same order


def test_last_layer_agrees_with_captum(problem, tmp_path):
    from erasus.tasks import head_parameter_names
    head = head_parameter_names(problem.model)[0].rsplit(".", 1)[0]   # the module name of the last nn.Linear
    ours, theirs = tracin_scores(problem, layer="last"), captum_self_influence(problem, tmp_path, layers=[head])
    assert spearmanr(ours, theirs).statistic >= 0.9
