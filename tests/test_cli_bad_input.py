"""The CLI half of issue 15's bad-input campaign (tests/cli_bad_inputs.py): every `latentvar` verb x each
kind of bad input to its flags -- wrong types, negative / zero counts, absurd sizes, NaN / ±inf, missing
paths, a file for a folder and a folder for a file, unknown choices, corrupt input files. Each must end
with exit status 2 and `error: <flag>: ` on stderr, before the verb starts any real work; never exit 1,
never a traceback. The verbs run in-process through latentvar.cli._errors.run, the entry point's code."""

import pytest

from cli_bad_inputs import CASES, KINDS, cli_verbs, fixtures, run_case


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return fixtures(tmp_path_factory.mktemp("cli_bad_input"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_flag_exits_2_naming_the_flag(case, paths, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    outcome = run_case(case, paths)
    assert outcome.status == "refused", f"exit {outcome.code}: {outcome.stderr[-600:]}"
    assert "Traceback" not in outcome.stderr


def test_every_verb_and_every_kind_is_covered():
    verbs = {v for v, _ in cli_verbs()}
    covered = {c.verb for c in CASES}
    assert verbs == covered, (sorted(verbs - covered), sorted(covered - verbs))
    assert {c.kind for c in CASES} == set(KINDS)


def test_every_flag_of_every_verb_is_tried():
    """Each option but --help, --resume (a switch) and --seed-like free integers is in some case."""
    tried = {(c.verb, a.lstrip("-")) for c in CASES for a in c.args if a.startswith("-") and a != "-"}
    switches = {"resume", "quick", "reuse", "help", "bf16"}
    missing = []
    for verb, command in cli_verbs():
        for param in command.params:
            opts = [o.lstrip("-") for o in getattr(param, "opts", [])]
            if not opts or set(opts) & switches or param.param_type_name == "argument":
                continue
            if not any((verb, o) in tried for o in opts):
                missing.append((" ".join(verb), opts[0]))
    assert not missing, missing
