"""The evaluation's design checked against the territory build and the data's years (respop.evaluation.design)."""

import pytest

from respop.config import EvaluationConfig
from respop.errors import ConfigError
from respop.evaluation.design import resolve_design

NAMES = {1: "Brest", 2: "Quimper", 3: "Morlaix", 4: "Lorient", 5: "Vannes"}
YEARS = [2018, 2019, 2020, 2021, 2022, 2023]
AVAILABLE = {"heart_failure": ["disease_stays", "readmissions_30d"], "diabetes": ["disease_stays"]}


def design(adjacency=(), **evaluation):
    return resolve_design(EvaluationConfig(**evaluation), NAMES, YEARS, AVAILABLE, adjacency)


def test_pilots_by_id_or_name_and_every_other_territory_as_donor():
    d = design(pilots={"1": 2021, "Morlaix": 2022})
    assert d.pilots == {1: 2021, 3: 2022}
    assert d.donors == [2, 4, 5]
    assert d.pre_years(3) == [2018, 2019, 2020, 2021]
    assert d.outcomes == [("heart_failure", "disease_stays"), ("heart_failure", "readmissions_30d"), ("diabetes", "disease_stays")]


def test_a_pilot_that_is_not_a_territory_names_the_territories():
    with pytest.raises(ConfigError, match=r"'Paris' is not a territory of the build; its territories: 1 \(Brest\)"):
        design(pilots={"Paris": 2021})


@pytest.mark.parametrize("start", [2018, 2024, 2010])
def test_a_start_year_outside_the_data(start):
    with pytest.raises(ConfigError, match=f"start year {start} .* outside the data \\(2018–2023\\)"):
        design(pilots={"1": start})


def test_too_few_pre_period_years():
    with pytest.raises(ConfigError, match=r"starts in 2020, with 2 year\(s\) of data before it \(2018, 2019\); min_pre_years = 3"):
        design(pilots={"1": 2020})
    assert design(pilots={"1": 2020}, min_pre_years=2).pilots == {1: 2020}


def test_listed_donors_and_a_pilot_among_them():
    assert design(pilots={"1": 2021}, donors=["Quimper", "5"]).donors == [2, 5]
    with pytest.raises(ConfigError, match="'1' is a pilot"):
        design(pilots={"1": 2021}, donors=["1", "2"])


def test_neighbours_left_out_on_request_with_their_reason():
    d = design(adjacency=[(1, 2), (4, 1), (3, 5)], pilots={"1": 2021}, exclude_neighbours=True)
    assert d.donors == [3, 5]
    assert set(d.excluded) == {2, 4}
    assert "voisin" in d.excluded[2]
    with pytest.raises(ConfigError, match="no comparison territory is left once the pilots' neighbours"):
        design(adjacency=[(1, 2), (1, 3), (1, 4), (1, 5)], pilots={"1": 2021}, exclude_neighbours=True)


def test_unknown_outcomes_and_diseases_name_what_exists():
    assert design(pilots={"1": 2021}, outcomes=["heart_failure.readmissions_30d"]).outcomes == [("heart_failure", "readmissions_30d")]
    with pytest.raises(ConfigError, match="no outcome 'amputations' for diabetes; its outcomes: disease_stays"):
        design(pilots={"1": 2021}, outcomes=["diabetes.amputations"])
    with pytest.raises(ConfigError, match="'copd' is not a disease of this run"):
        design(pilots={"1": 2021}, outcomes=["copd.disease_stays"])


def test_a_pilot_named_twice():
    with pytest.raises(ConfigError, match="named twice"):
        design(pilots={"1": 2021, "Brest": 2022})


def test_the_configuration_refuses_an_empty_pilot_list():
    from respop.config import Config

    with pytest.raises(Exception, match="name at least one pilot territory"):
        Config.model_validate({"evaluation": {"pilots": {}}})
