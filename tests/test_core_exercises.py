"""The exercise checks run inside the notebooks (cnn_helpers.core.exercises): pass, fail, explain, fall back."""

import pytest
import torch

from cnn_helpers.core import exercises


def test_check_function_passes_fails_and_explains():
    def make(g):
        return (torch.randn(3, generator=g),)

    exercises.check_function(lambda x: x * 2, lambda x: x + x, make)

    def blank(x):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        exercises.check_function(blank, lambda x: x + x, make)
    with pytest.raises(AssertionError, match="values differ"):
        exercises.check_function(lambda x: x * 3, lambda x: x + x, make)
    with pytest.raises(AssertionError, match="shape"):
        exercises.check_function(lambda x: x[:2], lambda x: x, make)
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        exercises.check_function(lambda x: 1 / 0, lambda x: x, make)


def test_check_close_on_nested_results():
    exercises.check_close((torch.ones(2), 3), (torch.ones(2), 3.0))
    with pytest.raises(AssertionError, match=r"result\[1\]"):
        exercises.check_close((torch.ones(2), 3), (torch.ones(2), 4))


def test_check_failed_is_shown_in_one_line_but_student_errors_keep_their_traceback():
    def make(g):
        return (torch.randn(3, generator=g),)

    with pytest.raises(exercises.CheckFailed) as failed:
        exercises.check_function(lambda x: x * 3, lambda x: x + x, make)
    assert failed.value._render_traceback_() == [f"\x1b[1;31mCheckFailed\x1b[0m: {failed.value}"]
    with pytest.raises(AssertionError) as raised:
        exercises.check_function(lambda x: 1 / 0, lambda x: x, make)
    assert not isinstance(raised.value, exercises.CheckFailed)
    assert isinstance(raised.value.__cause__, ZeroDivisionError)


def test_use_falls_back_until_the_check_passes(capsys):
    def make(g):
        return (torch.randn(3, generator=g),)

    def twice(x):
        raise NotImplementedError()

    reference = lambda x: x + x  # noqa: E731
    with pytest.raises(AssertionError):
        exercises.check_function(twice, reference, make)
    assert exercises.use(twice, reference) is reference
    assert "twice has not passed its check yet" in capsys.readouterr().out

    def twice(x):  # the student's finished version  # noqa: F811
        return 2 * x

    assert exercises.use(twice, reference) is reference  # not checked yet
    exercises.check_function(twice, reference, make)
    assert exercises.use(twice, reference) is twice
