"""Shared fixtures: small digits problems built from the cached scenarios (building is ~ms once cached)."""
import pytest
import torch

torch.set_num_threads(1)

from erasus.bench import get_scenario  # noqa: E402
from erasus.data import Problem  # noqa: E402


@pytest.fixture(scope="session")
def class_sc():
    "The digits `class` scenario (class 0 forgotten), seed 0."
    return get_scenario("digits", "class", seed=0)


@pytest.fixture(scope="session")
def random_sc():
    "The digits `random` scenario (10% forgotten), seed 0."
    return get_scenario("digits", "random", seed=0)


def small_problem(sc, n_forget=40, n_retain=300, n_test=100, seed=0) -> Problem:
    "A smaller Problem with the scenario's base model: the first rows of its forget/retain/test sets."
    p = sc.problem
    cut = lambda d, n: tuple(t[:n] for t in d)
    return Problem(p.model, cut(p.forget, n_forget), cut(p.retain, n_retain), task=p.task,
                   test=cut(p.test, n_test), batch_size=p.batch_size, seed=seed)


@pytest.fixture(scope="session")
def make_small():
    "The `small_problem` factory, for tests that need their own sizes or seed."
    return small_problem


@pytest.fixture(scope="session")
def small(class_sc):
    "A small class-forgetting problem: 40 forget (class 0), 300 retain, 100 test."
    return small_problem(class_sc)


@pytest.fixture(scope="session")
def small_random(random_sc):
    "A small random-forgetting problem: 40 forget, 300 retain, 100 test."
    return small_problem(random_sc)
