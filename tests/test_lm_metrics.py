"""MUSE / TOFU metrics of erasus.lm_metrics against direct computations, and on models whose answer is known."""
import numpy as np
import pytest
import torch

torch.set_num_threads(1)

pytest.importorskip("transformers")
pytest.importorskip("rouge_score")

from erasus.lm import CausalLMTask, encode_qa, encode_text, tiny_config, tiny_lm, train_lm, train_tokenizer  # noqa: E402
from erasus import lm_metrics as lmm  # noqa: E402

NAMES = ["Ada", "Bo", "Cy", "Di", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
CITIES, JOBS = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito"], ["baker", "pilot", "nurse", "judge", "chef"]
SENTENCES = [f"{n} Moss was born in {CITIES[i % 6]} in {1950 + 3 * i} and worked as a {JOBS[i % 5]} for years ."
             for i, n in enumerate(NAMES)]
SEEN, UNSEEN = SENTENCES[:10], SENTENCES[10:]
QA = [(f"Question: Where was {n} Moss born? Answer:", CITIES[i % 6], f"in {CITIES[i % 6]}",
       [c for c in CITIES if c != CITIES[i % 6]][:3]) for i, n in enumerate(NAMES)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(SENTENCES + [" ".join([q, a, p, *w]) for q, a, p, w in QA])


def _lm(tok, arch="llama", seed=0):
    return tiny_lm(tiny_config(arch, vocab_size=len(tok), n_layers=2, hidden=64, heads=4, max_len=64), seed=seed)


@pytest.fixture(scope="module")
def memorised(tok):
    "A 2-layer Llama trained for a few seconds on the 10 seen sentences and their birth-city questions."
    m = _lm(tok)
    texts, pairs = encode_text(tok, SEEN, max_len=32), encode_qa(tok, [q for q, *_ in QA[:10]], [a for _, a, *_ in QA[:10]], max_len=32)
    train_lm(m, CausalLMTask(tok), tuple(torch.cat([a, b]) for a, b in zip(texts, pairs)), epochs=60, batch_size=32)
    return m


@pytest.fixture(scope="module")
def untrained(tok):
    return _lm(tok, seed=1)


def _double(m):
    d = tiny_lm(m.config); d.load_state_dict(m.state_dict()); return d.double()


def _direct_logprobs(model, tok, prompt, answer):
    "Answer-token log-probs of one unpadded row, read off the log-softmax position by position."
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(" " + answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad(): logp = torch.log_softmax(model(torch.tensor([[tok.bos_token_id] + p + a])).logits[0].double(), -1)
    return np.array([logp[len(p) + j, t].item() for j, t in enumerate(a)])


def test_verbmem_separates_memorised_from_random(tok, memorised, untrained):
    hi, lo = lmm.verbmem(memorised, tok, SEEN, prefix_len=4), lmm.verbmem(untrained, tok, SEEN, prefix_len=4)
    assert hi > 0.8 and lo < 0.2, (hi, lo)
    assert lmm.verbmem(memorised, tok, SEEN, prefix_len=4, reduce=False).shape == (10,)


def test_knowmem_separates_seen_from_unseen_questions(tok, memorised):
    seen = lmm.knowmem(memorised, tok, [q for q, *_ in QA[:10]], [a for _, a, *_ in QA[:10]])
    assert seen > 0.9, seen
    assert lmm.knowmem(memorised, tok, [QA[0][0]], ["nowhere"]) == 0.0


def test_logprobs_match_a_manual_loop(tok, memorised):
    m = _double(memorised)
    prompts, answers = [q for q, *_ in QA], [a for _, a, *_ in QA]
    got = lmm.qa_logprobs(m, tok, prompts, answers, batch_size=5)
    for g, p, a in zip(got, prompts, answers): np.testing.assert_allclose(g, _direct_logprobs(m, tok, p, a), atol=1e-9, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_greedy_equals_one_at_a_time(tok, arch):
    m = _lm(tok, arch)
    prompts = [[tok.bos_token_id] + tok(s, add_special_tokens=False)["input_ids"][:1 + i % 6] for i, s in enumerate(SENTENCES)]
    batched = lmm.greedy_ids(m, prompts, 10, tok.pad_token_id, tok.eos_token_id, batch_size=5)
    assert batched == [lmm.greedy_ids(m, [p], 10, tok.pad_token_id, tok.eos_token_id)[0] for p in prompts]


def test_rouge_matches_rouge_score_by_hand():
    from rouge_score import rouge_scorer
    preds, refs = ["the city of Paris", "a baker by trade", ""], ["Paris", "a pilot", "Oslo"]
    f1 = [rouge_scorer.RougeScorer(["rougeL"]).score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)]
    rec = [rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(r, p)["rougeL"].recall for p, r in zip(preds, refs)]
    np.testing.assert_allclose(lmm.rouge_l(preds, refs), f1, atol=1e-12)
    np.testing.assert_allclose(lmm.rouge_l(preds, refs, "recall", stemmer=True), rec, atol=1e-12)


def test_min_k_auc_and_privleak_by_hand(tok, memorised, untrained):
    from sklearn.metrics import roc_auc_score
    m = _double(memorised)
    lps = lmm.text_logprobs(m, tok, SENTENCES)
    direct = [np.sort(lp)[:max(1, int(0.2 * len(lp)))].mean() for lp in lps]
    np.testing.assert_allclose(lmm.min_k_prob(m, tok, SENTENCES), direct, atol=1e-9, rtol=0)
    seen, unseen = lmm.min_k_prob(memorised, tok, SEEN, 0.4), lmm.min_k_prob(memorised, tok, UNSEEN, 0.4)
    auc = lmm.mia_auc(seen, unseen)
    assert abs(auc - roc_auc_score([1] * 10 + [0] * 2, np.r_[seen, unseen])) < 1e-12
    assert auc == 1.0                                                     # the memorised texts are told apart
    r_auc = lmm.mia_auc(seen[:6], np.r_[seen[6:], unseen])            # a mixed-up split: some value below 1
    assert r_auc < 1
    # MUSE: AUC with holdout as the positive class, relative to the retrained model's, in percent
    muse = lambda a: 1 - a
    assert abs(lmm.privleak(auc, r_auc) - (muse(auc) - muse(r_auc)) / muse(r_auc) * 100) < 1e-9
    assert lmm.privleak(auc, 0.5) == -100.0 and lmm.privleak(0.5, 0.5) == 0.0 and lmm.privleak(0.25, 0.5) == 50.0
    for attack in lmm.ATTACKS:
        assert lmm.mia_auc(lmm.mia_scores(memorised, tok, SEEN, attack), lmm.mia_scores(memorised, tok, UNSEEN, attack)) == 1.0


def test_grad_norms_by_hand(tok, memorised):
    m = _double(memorised)
    rows = encode_text(tok, SENTENCES[:4])
    got = lmm.grad_norms(m, rows)
    assert all(q.grad is None for q in m.parameters())                   # the caller's .grad is left alone
    direct = []
    for s in SENTENCES[:4]:
        ids = torch.tensor([[tok.bos_token_id] + tok(s, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]])
        m.zero_grad(); torch.nn.functional.cross_entropy(m(ids).logits[0, :-1], ids[0, 1:]).backward()
        direct.append(torch.stack([q.grad.norm() for q in m.parameters() if q.grad is not None]).mean().item())
    np.testing.assert_allclose(got, direct, rtol=1e-9)
    with pytest.raises(ValueError, match="p must be 1, 2 or inf"): lmm.grad_norms(m, rows, p=3)


def test_truth_ratio_and_forget_quality_by_hand(tok, memorised, untrained):
    from scipy.stats import hmean, ks_2samp
    m = _double(memorised)
    q, a, para, pert = (list(x) for x in zip(*QA))
    tr = lmm.truth_ratio(m, tok, q, para, pert)
    norm = lambda p, x: _direct_logprobs(m, tok, p, x).mean()
    direct = [np.exp(np.mean([norm(p, w) for w in ws]) - norm(p, c)) for p, c, ws in zip(q, para, pert)]
    np.testing.assert_allclose(tr, direct, rtol=1e-9)
    # the memorised model prefers the true city on the questions it saw: R << 1 there
    tr_a = lmm.truth_ratio(memorised, tok, q, a, pert)
    assert tr_a[:10].max() < 0.5 < lmm.truth_score(tr_a[:10], forget=False)
    tr_u = lmm.truth_ratio(untrained, tok, q, a, pert)
    assert lmm.forget_quality(tr_a[:10], tr_u[:10]) == pytest.approx(ks_2samp(tr_a[:10], tr_u[:10]).pvalue, abs=1e-12)
    assert lmm.forget_quality(tr_a[:10], tr_u[:10]) < 0.01 and lmm.forget_quality(tr_u, tr_u) == 1.0
    assert lmm.truth_score([0.5, 2.0], forget=True) == 0.5 and lmm.truth_score([0.2, 3.0], forget=False) == pytest.approx(0.4)
    retain = dict(prompts=q[:10], answers=a[:10], paraphrased=para[:10], perturbed=pert[:10])
    world = dict(prompts=q[:5], answers=a[:5], perturbed=pert[:5])
    parts = lmm.model_utility(memorised, tok, retain, world, parts=True)
    assert parts["model_utility"] == pytest.approx(hmean([v for k, v in parts.items() if k != "model_utility"]), abs=1e-12)
    assert parts["model_utility"] > lmm.model_utility(untrained, tok, retain, world)


def test_memorisation_scores(tok, memorised, untrained):
    rows = encode_qa(tok, [q for q, *_ in QA[:10]], [a for _, a, *_ in QA[:10]])
    assert lmm.exact_memorization(memorised, rows).mean() > 0.9 and lmm.extraction_strength(memorised, rows).mean() > 0.9
    assert lmm.exact_memorization(untrained, rows).mean() < 0.3 and lmm.extraction_strength(untrained, rows).mean() < 0.3


def test_runs_on_a_peft_model(tok, memorised):
    peft = pytest.importorskip("peft")
    import copy
    wrapped = peft.get_peft_model(copy.deepcopy(memorised), peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    # LoRA starts as the identity: the wrapped model scores exactly as the model it wraps
    assert lmm.verbmem(wrapped, tok, SEEN, prefix_len=4) == lmm.verbmem(memorised, tok, SEEN, prefix_len=4)
    np.testing.assert_allclose(lmm.min_k_prob(wrapped, tok, SEEN), lmm.min_k_prob(memorised, tok, SEEN), atol=1e-6)


def test_bad_inputs(tok, memorised):
    with pytest.raises(ValueError, match="no more than prefix_len=4"): lmm.verbmem(memorised, tok, ["Ada Moss"], prefix_len=4)
    with pytest.raises(ValueError, match="1 prompts but 2 answers"): lmm.knowmem(memorised, tok, ["Q"], ["a", "b"])
    with pytest.raises(ValueError, match="k must be in"): lmm.min_k_prob(memorised, tok, SEEN, k=1.5)
    with pytest.raises(ValueError, match="unknown attack"): lmm.mia_scores(memorised, tok, SEEN, "ratio")
    with pytest.raises(ValueError, match="needs member and non-member"): lmm.mia_auc([], [1.0])
    with pytest.raises(ValueError, match="non-empty list per prompt"): lmm.truth_ratio(memorised, tok, ["Q"], ["a"], ["b"])
    with pytest.raises(ValueError, match="world lacks"): lmm.model_utility(memorised, tok, dict(prompts=[], answers=[], paraphrased=[], perturbed=[]), {})
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"): lmm.greedy_ids(memorised, [[1]], 0, 0, 2)
    with pytest.raises(TypeError, match="list of strings"): lmm.greedy_answers(memorised, tok, "Question")


@pytest.fixture(scope="module")
def facts_tiny():
    "The facts benchmark's small preset (cached in $ERASUS_CACHE after its first build); its oracle is never on the problem."
    from erasus.bench import get_scenario
    return get_scenario("facts.tiny", "forget10", seed=0)


def test_registered_metrics_on_facts(facts_tiny):
    from erasus.core import METRICS
    sc = facts_tiny
    evaluate = lambda m, _, metrics: sc.evaluate(m, metrics)   # the oracle in reach of PrivLeak and forget quality
    for name in lmm.LM_DEFAULT_METRICS:
        e, _ = METRICS.get(name)
        assert e.kinds == ("causal_lm",) and e.extra["direction"] in ("higher", "lower", "oracle"), name
    base, oracle = (evaluate(m, sc.problem, lmm.LM_DEFAULT_METRICS) for m in (sc.problem.model, sc.oracle))
    # the bar: the base model memorised the forget people, the oracle did not; both keep the retain people
    assert base["verbmem_forget"] >= 0.8 and base["knowmem_forget"] >= 0.8, base
    assert oracle["knowmem_forget"] < 0.3 and oracle["verbmem_forget"] < base["verbmem_forget"] - 0.3, oracle
    assert min(base["knowmem_retain"], oracle["knowmem_retain"]) > 0.8
    assert base["privleak"] < -50 and oracle["privleak"] == 0.0
    assert oracle["forget_quality"] == 1.0 and base["forget_quality"] < 0.5
    assert lmm.lm_avg_gap(oracle, oracle) == 0.0 < lmm.lm_avg_gap(base, oracle)
    # the same numbers again: deterministic
    assert evaluate(sc.problem.model, sc.problem, lmm.LM_DEFAULT_METRICS) == base


def test_registered_metrics_need_texts_and_oracle(facts_tiny):
    from erasus.data import Problem
    from erasus.metrics import evaluate
    p = facts_tiny.problem
    bare = Problem(p.model, p.forget, p.retain, task=p.task, test=p.test)
    with pytest.raises(ValueError, match="read the problem's text records"): evaluate(p.model, bare, ["verbmem_forget"])
    bare.texts = p.texts
    with pytest.raises(ValueError, match="only a scenario's evaluation provides"): evaluate(p.model, bare, ["forget_quality"])
