"""Causal LMs behind the Task adapter (erasus.lm) and the `facts` benchmark, on tiny random Llama and GPT-2 configs."""
import subprocess
import sys
import warnings

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from erasus.api import unlearn  # noqa: E402
from erasus.lm import (IDK_ANSWERS, CausalLMTask, encode_qa, encode_text, generate, tiny_config, tiny_lm,  # noqa: E402
                       train_tokenizer, trim)

ARCHS = ("llama", "gpt2")
PEOPLE = [("Ada Moss", "Paris", "baker"), ("Bo Penn", "Rome", "pilot"), ("Cy Rook", "Oslo", "nurse"),
          ("Di Sage", "Lima", "judge"), ("Ed Moss", "Cairo", "chef"), ("Fay Penn", "Quito", "tailor")]


def _qa(people):
    return ([f"Question: Where was {n} born? Answer:" for n, _, _ in people] + [f"Question: What does {n} do? Answer:" for n, _, _ in people],
            [c for _, c, _ in people] + [j for _, _, j in people])


@pytest.fixture(scope="module")
def tok():
    p, a = _qa(PEOPLE)
    return train_tokenizer([q + " " + x for q, x in zip(p, a)] + [f"{n} was born in {c}." for n, c, _ in PEOPLE] + list(IDK_ANSWERS))


@pytest.fixture(scope="module")
def splits(tok):
    f, r = _qa(PEOPLE[:2]), _qa(PEOPLE[2:])
    return encode_qa(tok, *f, max_len=16), encode_qa(tok, *r, max_len=16)


def _model(tok, arch, seed=0):
    return tiny_lm(tiny_config(arch, vocab_size=len(tok), n_layers=2, hidden=32, heads=2, max_len=32), seed)


def _moved(a, b):
    return any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_import_is_light():
    "Importing erasus.lm and the facts benchmark does not import transformers, tokenizers or peft."
    code = ("import sys, erasus.lm, erasus.benchmarks.facts; "
            "print([m for m in ('transformers', 'tokenizers', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_encoding(tok):
    ids, mask, lab = encode_qa(tok, ["Question: Where was Ada Moss born? Answer:"], ["Paris"], max_len=16)
    assert ids.shape == mask.shape == lab.shape == (1, 16) and ids.dtype == torch.long
    assert tok.decode(ids[0][lab[0] != -100], skip_special_tokens=True) == "Paris"
    assert (lab[mask == 0] == -100).all()
    t = encode_text(tok, ["Ada Moss was born in Paris."])
    assert (t[2][0] != -100).sum() == t[1][0].sum() - 1
    with pytest.raises(ValueError, match="more than max_len"):
        encode_qa(tok, ["Question: Where was Ada Moss born? Answer:"], ["Paris"], max_len=4)


@pytest.mark.parametrize("arch", ARCHS)
def test_task_methods(tok, splits, arch):
    m, task = _model(tok, arch), CausalLMTask(tok, pools=[[c for _, c, _ in PEOPLE]])
    f, _ = splits
    n = len(f[0])
    task.validate(m, f, "forget")
    assert task.per_sample_loss(m, f).shape == (n,) and torch.isfinite(task.per_sample_loss(m, f)).all()
    assert task.logits(m, f).shape == (n, 16, len(tok))
    assert task.features(m, f).shape == (n, 32)
    assert task.correct(m, f).dtype == torch.bool and task.correct(m, f).shape == (n,)
    # padding never changes a row's loss
    wide = encode_qa(tok, *_qa(PEOPLE[:2]), max_len=28)
    torch.testing.assert_close(task.per_sample_loss(m, wide), task.per_sample_loss(m, f), rtol=1e-5, atol=1e-5)
    assert trim(wide)[0].shape[1] == int(wide[1].sum(1).max())
    # wrong targets: a city answer gets another city, a job answer (in no pool) a refusal
    new = task.relabel(f, torch.Generator().manual_seed(0))
    got = [tok.decode(new[0][i][new[2][i] != -100], skip_special_tokens=True) for i in range(n)]
    cities = {c for _, c, _ in PEOPLE}
    assert all(g in cities - {PEOPLE[i][1]} for i, g in enumerate(got[:2])), got
    assert all(g in IDK_ANSWERS for g in got[2:]), got
    out = generate(m, tok, ["Question: Where was Ada Moss born? Answer:"], max_new_tokens=3)
    assert len(out) == 1 and isinstance(out[0], str)


def test_validate_refuses_bad_data(tok, splits):
    m, task = _model(tok, "llama"), CausalLMTask(tok)
    ids, mask, lab = splits[0]
    with pytest.raises(ValueError, match="input_ids, attention_mask, labels"):
        task.validate(m, (ids, mask), "forget")
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        task.validate(m, (ids + 10_000, mask, lab), "forget")
    with pytest.raises(ValueError, match="no labelled"):
        task.validate(m, (ids, mask, torch.full_like(lab, -100)), "forget")
    with pytest.raises(ValueError, match="labels on padding"):
        task.validate(m, (ids, mask, torch.where(mask == 0, ids, lab)), "forget")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", ["gradient_ascent", "negative_gradient", "npo", "simnpo"])
def test_strategies_run_on_hf_models(tok, splits, arch, name):
    "The loss-based strategies run through CausalLMTask on a random Llama and GPT-2 and move the weights; the caller's model is untouched."
    m = _model(tok, arch)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = unlearn(m, *splits, strategy=name, task=CausalLMTask(tok), steps=5)
    assert res.steps == 5 and _moved(m, res.model)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_peft_lora_model(tok, splits):
    "A peft LoRA wrapper is a causal LM like any other: the task reads it and gradient ascent moves only the adapters."
    peft = pytest.importorskip("peft")
    base = _model(tok, "llama")
    m = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    task = CausalLMTask(tok)
    f, _ = splits
    assert task.per_sample_loss(m, f).shape == (len(f[0]),) and task.features(m, f).shape == (len(f[0]), 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = unlearn(m, *splits, strategy="gradient_ascent", task=task, steps=5)
    lora = {k: v for k, v in res.model.state_dict().items() if "lora_B" in k}
    assert lora and any(v.abs().sum() > 0 for v in lora.values())              # lora_B starts at 0: it moved
    frozen = [k for k in m.state_dict() if "lora" not in k]
    assert all(torch.equal(m.state_dict()[k], res.model.state_dict()[k]) for k in frozen)


def test_memorises_and_loss_separates(tok):
    "Trained briefly, a tiny Llama answers its training questions and finds them likelier than unseen ones."
    from erasus.lm import train_lm
    task = CausalLMTask(tok)
    seen, unseen = encode_qa(tok, *_qa(PEOPLE[:4]), max_len=16), encode_qa(tok, *_qa(PEOPLE[4:]), max_len=16)
    m = tiny_lm(tiny_config("llama", vocab_size=len(tok), n_layers=2, hidden=64, heads=4, max_len=32), 0)
    train_lm(m, task, seen, epochs=120, batch_size=8)
    with torch.no_grad():
        assert task.correct(m, seen).float().mean() >= 0.9
        assert task.per_sample_loss(m, seen).mean() < 0.1 < task.per_sample_loss(m, unseen).mean()


# ---------------------------------------------------------------- the facts benchmark
def test_facts_generator_is_deterministic():
    from erasus.benchmarks.facts import assign_splits, facts_data, split_tensors
    a, b = facts_data(20, 5), facts_data(20, 5)
    assert a.bios == b.bios and a.qa == b.qa and a.tokenizer.get_vocab() == b.tokenizer.get_vocab()
    s = assign_splits(a, "forget10", 3)
    assert s.people == assign_splits(b, "forget10", 3).people
    f = split_tensors(s, "forget")
    assert f[0].shape == (2 * 6, a.max_len) and len(s.rows["forget"]) == 12
    assert all(r["answer"] not in r["wrong"] for r in a.qa)


@pytest.fixture(scope="module")
def tiny_sc():
    from erasus.bench import get_scenario
    return get_scenario("facts.tiny", "forget10", seed=0)


def test_facts_tiny_scenario(tiny_sc):
    "The tiny preset: the base model knows the forget people, the oracle does not, and the texts are on the problem."
    sc, texts = tiny_sc, tiny_sc.problem.texts
    task = sc.problem.task
    assert task.kind == "causal_lm" and sc.benchmark == "facts" and sc.scenario == "forget10"
    know = lambda m, s: task.correct(m, texts.encode_qa(texts.qa_of(s))).float().mean().item()
    with torch.no_grad():
        assert know(sc.problem.model, "forget") >= 0.8 and know(sc.problem.model, "retain") >= 0.8
        assert know(sc.oracle, "forget") <= 0.3 and know(sc.oracle, "retain") >= 0.8
    assert len(texts.rows["forget"]) == sc.problem.n_forget and len(texts.rows["holdout"]) == len(sc.problem.test[0])
    assert {texts.people[i]["split"] for i in sc.indices["forget"].tolist()} == {"forget"}


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_batches_change_no_mean(tok, splits, arch):
    "`measure` reads a causal LM's rows sorted by length in small batches: the same mean loss and accuracy as in order."
    from erasus.budgets import measure
    from erasus.core import batches
    model, task = _model(tok, arch), CausalLMTask(tok)
    texts = encode_text(tok, [f"{n} was born in {c} and works as a {j}." for n, c, j in PEOPLE], max_len=32)
    qa = encode_qa(tok, *_qa(PEOPLE), max_len=32)
    data = tuple(torch.cat([a, b]) for a, b in zip(texts, qa))            # long and short rows, interleaved below
    data = tuple(t[torch.randperm(len(t), generator=torch.Generator().manual_seed(0))] for t in data)
    order = torch.cat([b[1].sum(1) for b in task.eval_batches(data)])
    assert (order[1:] >= order[:-1]).all()                                 # shortest first
    with torch.no_grad():
        loss = torch.cat([task.per_sample_loss(model, b) for b in batches(data, 1024, shuffle=False)]).mean().item()
        acc = torch.cat([task.correct(model, b).float() for b in batches(data, 1024, shuffle=False)]).mean().item()
    assert abs(measure(model, task, data, "forget_loss") - loss) < 1e-5
    assert measure(model, task, data, "forget_acc") == acc
