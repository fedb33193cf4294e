"""The loss-based strategies on real Hugging Face causal LMs (a Llama- and a GPT-2-style config, tiny), through CausalLMTask, and under peft's LoRA."""
import copy

import pytest
import torch

from erasus.api import unlearn
from erasus.core import STRATEGIES, snapshot, state_equal
from erasus.lm import IDK_ANSWERS, CausalLMTask, encode_qa, tiny_config, tiny_lm, train_lm, train_tokenizer
from erasus.metrics import per_sample

ARCHS = ("llama", "gpt2")
NAMES = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
CITIES = ["Lima", "Oslo", "Rome", "Riga", "Fez", "Graz", "Pune", "Lyon", "Vigo", "Cork", "Basel", "Perth"]
PROMPTS = [f"Question: Where was {n} born? Answer:" for n in NAMES]
ANSWERS = [f"{n} was born in {c}." for n, c in zip(NAMES, CITIES)]
N_FORGET = 4

# every strategy that should unlearn a causal LM, with the overrides that keep a case at a few dozen steps
LM_STRATEGIES = {
    "gradient_ascent": dict(lr=3e-3), "negative_gradient": dict(lr=3e-3), "npo": dict(lr=3e-3),
    "simnpo": dict(lr=3e-3), "wga": dict(lr=3e-3, beta=0.0), "undial": dict(lr=1e-2), "rmu": dict(lr=1e-2, steering=4.0),
    "random_label": dict(lr=1e-2), "lora": dict(lr=3e-2), "finetune": dict(), "idk_dpo": dict(lr=1e-2),
    "scrub": dict(optimizer="adam", lr=1e-2, msteps=5, epochs=5), "knowledge_distillation": dict(lr=1e-2),
    "satimp": dict(lr=1e-2),   # its token weights p^b1 (1-p)^b2 are small on a memorised model: slow by design
}
# and any strategy that lists the causal_lm kind explicitly (e.g. one added later) is checked at its defaults
CASES = {**LM_STRATEGIES, **{e.name: {} for e in STRATEGIES.list() if "causal_lm" in e.kinds and e.name not in LM_STRATEGIES}}
STEPS = 12
# inference-time methods change outputs through hooks and take no optimiser steps: no `steps`, no weight change
INFERENCE = {e.name for e in STRATEGIES.list() if e.extra.get("edits") == "activations"}
TRAIN = dict(llama=dict(epochs=150, lr=1e-2), gpt2=dict(epochs=150, lr=3e-3))   # each memorises the twelve answers


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(PROMPTS + ANSWERS + list(IDK_ANSWERS))


@pytest.fixture(scope="module", params=ARCHS)
def lm(request, tok):
    "(model, forget, retain, task): a tiny LM of one architecture that has learnt all twelve answers."
    task = CausalLMTask(tok, pools=[CITIES])
    qa = encode_qa(tok, PROMPTS, ANSWERS)
    model = tiny_lm(tiny_config(request.param, vocab_size=len(tok), n_layers=2, hidden=32, heads=2, max_len=32), seed=0)
    train_lm(model, task, qa, batch_size=12, seed=0, **TRAIN[request.param])
    forget, retain = tuple(t[:N_FORGET] for t in qa), tuple(t[N_FORGET:] for t in qa)
    return model, forget, retain, task


def nll(model, task, data) -> float:
    return per_sample(model, task.per_sample_loss, data).mean().item()


def test_lm_strategies_registered_for_causal_lm():
    for name in LM_STRATEGIES:
        assert STRATEGIES.get(name)[0].supports("causal_lm"), f"{name} does not list causal_lm"


def test_base_model_learnt_the_answers(lm):
    model, forget, retain, task = lm
    assert nll(model, task, forget) < 0.1 and nll(model, task, retain) < 0.1


@pytest.mark.parametrize("name", list(CASES))
def test_strategy_unlearns_a_causal_lm(name, lm):
    "Runs, changes the model, leaves the caller's alone, is deterministic, and raises the forget NLL more than the retain NLL."
    model, forget, retain, task = lm
    before = snapshot(model)
    steps = {} if name in INFERENCE else dict(steps=STEPS)
    run = lambda: unlearn(model, forget, retain, strategy=name, task=task, seed=1, **steps, **CASES[name])
    r1, r2 = run(), run()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), f"{name} changed the caller's model"
    if name in INFERENCE: assert nll(r1.model, task, forget) != nll(model, task, forget), f"{name} did nothing"
    else: assert not state_equal(r1.model, model), f"{name} did nothing"
    assert state_equal(r1.model, r2.model), f"{name}: same seed, different weights"
    if name == "finetune": return                       # fine-tuning on the retain set alone need not raise the forget loss
    f0, r0 = nll(model, task, forget), nll(model, task, retain)
    f1, r1_ = nll(r1.model, task, forget), nll(r1.model, task, retain)
    assert f1 > f0 + 0.5, f"{name}: forget NLL {f0:.3f} -> {f1:.3f}"
    assert f1 - f0 > r1_ - r0, f"{name}: retain NLL rose more ({r0:.3f} -> {r1_:.3f}) than forget ({f0:.3f} -> {f1:.3f})"


PEFT_TARGETS = dict(llama=["q_proj", "v_proj"], gpt2=["c_attn"])


# every LLM strategy on a peft model, but erasus's own `lora` (adapters on adapters) and `finetune` (it does not forget)
PEFT_CASES = [n for n in CASES if n not in ("lora", "finetune")]


@pytest.mark.parametrize("name", PEFT_CASES)
def test_strategy_on_a_peft_lora_model(name, lm):
    "On a peft-wrapped model a strategy trains the adapters only; the base weights and the caller's model stay."
    peft = pytest.importorskip("peft")
    model, forget, retain, task = lm
    arch = "llama" if model.config.model_type == "llama" else "gpt2"
    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=2, lora_alpha=4, target_modules=PEFT_TARGETS[arch],
                                                                     lora_dropout=0.0, init_lora_weights=True,
                                                                     fan_in_fan_out=arch == "gpt2"))
    before = snapshot(wrapped)
    steps = {} if name in INFERENCE else dict(steps=STEPS)
    res = unlearn(wrapped, forget, retain, strategy=name, task=task, seed=0, **steps, **CASES[name])
    after = res.model.state_dict()
    if name in INFERENCE:               # hooks on a copy: no weight of it changes, the outputs do (checked below)
        assert all(torch.equal(before[k], after[k]) for k in before), f"{name} changed weights"
    elif after.keys() != before.keys():   # a wrapper around a copy of the model (dexperts, delta_unlearning): that copy is untouched
        assert all(torch.equal(before[k], v) for k, v in res.model.base.state_dict().items()), f"{name} changed the wrapped model"
    else:
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert changed and all("lora_" in k for k in changed), f"{name} changed {sorted(k for k in changed if 'lora_' not in k)[:3]}"
    assert all(torch.equal(before[k], v) for k, v in wrapped.state_dict().items())
    assert nll(res.model, task, forget) > nll(wrapped, task, forget)




def test_lora_adapts_every_linear_layer_of_both_architectures(lm):
    "erasus's own LoRA wraps nn.Linear and GPT-2's transformers Conv1D alike, and merges back into a plain model."
    from erasus.strategies.lora import LoRALinear, add_lora
    model, forget, retain, task = lm
    wrapped = add_lora(copy.deepcopy(model), r=2)
    adapted = [n for n, m in wrapped.named_modules() if isinstance(m, LoRALinear)]
    attention = "self_attn.q_proj" if model.config.model_type == "llama" else "attn.c_attn"
    assert any(n.endswith(attention) for n in adapted), adapted
    res = unlearn(model, forget, retain, strategy="lora", task=task, seed=0, steps=STEPS, **LM_STRATEGIES["lora"])
    assert res.model.state_dict().keys() == model.state_dict().keys()          # merged: the original architecture
    assert 0 < res.log["trainable"] < res.log["total"] / 4
