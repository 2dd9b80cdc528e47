"""The typed number checks every option, manifest field and serve job field goes through."""

import os

import pytest

from vqa_rt.errors import InputError
from vqa_rt.runtime.checks import finite_number, max_threads, thread_count, whole_number


@pytest.mark.parametrize("call, message", [
    (lambda: whole_number("3", "n"), "n must be a whole number, got '3'"),
    (lambda: whole_number(True, "n"), "n must be a whole number, got True"),
    (lambda: whole_number(2.0, "n"), "n must be a whole number, got 2.0"),
    (lambda: whole_number(-1, "n"), "n must be 0 or more, got -1"),
    (lambda: whole_number(11, "n", 1, 10), "n must be at most 10, got 11"),
    (lambda: finite_number(float("nan"), "x"), "x must be a finite number, got nan"),
    (lambda: finite_number(float("-inf"), "x"), "x must be a finite number, got -inf"),
    (lambda: finite_number(False, "x"), "x must be a finite number, got False"),
    (lambda: finite_number(0, "x", above=0), "x must be greater than 0, got 0"),
    (lambda: finite_number(-5, "x", at_least=0), "x must be at least 0, got -5"),
    (lambda: finite_number(2, "x", at_most=1), "x must be at most 1, got 2"),
    (lambda: thread_count(max_threads() + 1), f"--threads must be 0 (automatic) to {max_threads()}"),
    (lambda: thread_count(-1, "--workers"), "--workers must be 0 (automatic) to"),
])
def test_bad_numbers_are_input_errors(call, message):
    with pytest.raises(InputError) as raised:
        call()
    assert message in str(raised.value)


def test_good_numbers_pass_through():
    assert whole_number(5, "n", None) == 5 and whole_number(-3, "n", None) == -3
    assert finite_number(1, "x", above=0) == 1.0
    assert max_threads() == 4 * (os.cpu_count() or 1) and thread_count(0) == 0 and thread_count(max_threads())
