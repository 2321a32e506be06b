"""Where build / push and the Dockerfile parser and linter live since the split by concern:
ops/build.py, ops/push.py, ops/runner.py (how both run), model/dockerfile.py, model/lint.py.
The public names and the old flat paths still lead there."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest

import dcs_magic
from dcs_magic.model import dockerfile, lint
from dcs_magic.ops import build, push, runner


@pytest.fixture
def fresh_alias() -> Iterator[None]:
    """Forget the old-path aliases around the test, so it sees the finder's warning."""
    names = ("dcs_magic.pipeline", "dcs_magic.dockerfile", "dcs_magic.engine")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    yield
    for name in names:
        sys.modules.pop(name, None)
        vars(dcs_magic).pop(name.rpartition(".")[2], None)
    sys.modules.update(saved)


def test_public_build_and_push_are_the_ops_functions() -> None:
    assert dcs_magic.build is build.build
    assert dcs_magic.push is push.push


def test_build_and_push_share_one_cancellation() -> None:
    # The magics' interrupt handler and `Job.status` recognise runner.Cancelled only.
    for module in (build, push):
        assert vars(module)["Cancelled"] is runner.Cancelled
        assert vars(module)["CancelToken"] is runner.CancelToken
    assert issubclass(runner.Cancelled, KeyboardInterrupt)


def test_old_pipeline_path_reads_the_three_parts(fresh_alias: None) -> None:
    with pytest.warns(DeprecationWarning, match=r"dcs_magic\.pipeline has moved to dcs_magic\.ops\.build and "
                                                r"dcs_magic\.ops\.push and dcs_magic\.ops\.runner"):
        old = importlib.import_module("dcs_magic.pipeline")
    assert old.build is dcs_magic.build and old.push is dcs_magic.push and old.Job is runner.Job
    assert old.parse_pairs(["A=1"], "--build-arg") == {"A": "1"}
    with pytest.raises(AttributeError, match="moved to dcs_magic.ops.build"):
        old.no_such_name  # noqa: B018


def test_old_dockerfile_path_reads_parser_and_linter(fresh_alias: None) -> None:
    with pytest.warns(DeprecationWarning, match=r"dcs_magic\.dockerfile has moved to dcs_magic\.model\.dockerfile"):
        from dcs_magic.dockerfile import lint as old_lint  # type: ignore[attr-defined]
        from dcs_magic.dockerfile import parse as old_parse
    assert old_parse is dockerfile.parse and old_lint is lint.lint
    assert [i.keyword for i in old_parse("FROM a:1\nRUN x\n").instructions] == ["FROM", "RUN"]


def test_a_module_that_moved_whole_is_the_same_object(fresh_alias: None) -> None:
    from dcs_magic.adapters import engine

    with pytest.warns(DeprecationWarning, match=r"dcs_magic\.engine has moved to dcs_magic\.adapters\.engine;"):
        old = importlib.import_module("dcs_magic.engine")
    assert old is engine  # a patch through the old path reaches the code


def test_the_parser_has_no_lint_and_the_linter_reads_through_it() -> None:
    assert not hasattr(dockerfile, "lint") and not hasattr(dockerfile, "Finding")
    assert vars(lint)["parse"] is dockerfile.parse and vars(lint)["stages"] is dockerfile.stages
    [finding] = lint.lint("FROM ubuntu\n")
    assert finding.rule == "mutable-base"


def test_dead_names_are_gone() -> None:
    for name in ("PYTHON3_ENV", "CONDA_ENV"):
        assert not hasattr(dockerfile, name) and not hasattr(lint, name)
    assert not hasattr(dockerfile.Dockerfile, "directive")
