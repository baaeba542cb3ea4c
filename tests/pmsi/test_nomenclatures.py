"""The French CIM-10 shipped with respop: codes and labels for display."""

from respop.pmsi import cim10, icd10_label, is_icd10


def test_cim10_has_the_french_codes_and_labels():
    table = cim10()
    assert table.height > 19_000
    assert table["code"].n_unique() == table.height
    assert icd10_label("E11.9") == "Diabète sucré  de type 2, sans complication"
    assert icd10_label("i500") == "Insuffisance cardiaque congestive"
    assert icd10_label("I50", short=True) == "INSUF. CARD."
    assert icd10_label("ZZZ") is None


def test_is_icd10_accepts_dotted_and_undotted_forms():
    assert is_icd10("E119") and is_icd10("E11.9") and is_icd10(" o24 ")
    assert not is_icd10("E99") and not is_icd10("")
