"""Validation knows what it can validate (issue 17): a configured disease that the synthetic
truth does not hold (``truth/diseases.json``) is refused on one line, never compared with another
disease's truth."""

from __future__ import annotations

import json

import pytest

from respop.case_finding.validation import check_validatable, truth_diseases
from respop.errors import InputError, RespopError

HELD = {"diabetes": {"severity_column": "diabetes_type", "stay_kind": "diabetes"},
        "heart_failure": {"severity_column": "hf_stage", "stay_kind": "heart_failure"}}


def truth(tmp_path, described=HELD):
    folder = tmp_path / "truth"
    folder.mkdir()
    if described is not None:
        (folder / "diseases.json").write_text(json.dumps(described), encoding="utf-8")
    return folder


def test_held_diseases_are_validated(tmp_path):
    assert list(check_validatable(["heart_failure", "diabetes"], truth(tmp_path))) == ["heart_failure", "diabetes"]


def test_a_disease_the_truth_does_not_hold_is_refused_on_one_line(tmp_path):
    folder = truth(tmp_path)
    with pytest.raises(RespopError) as err:
        check_validatable(["diabetes", "obesity"], folder)
    message = str(err.value)
    assert "\n" not in message
    assert "cannot validate obesity" in message and "diabetes, heart_failure" in message
    assert str(folder / "diseases.json") in message


def test_a_truth_that_names_no_disease(tmp_path):
    with pytest.raises(InputError, match="diseases.json not found"):
        truth_diseases(truth(tmp_path, None))
