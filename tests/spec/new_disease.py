"""A made-up disease written as an analyst would: ``obesity.toml`` (ICD-10 E66, two branches,
sub-types by codes, four strata using a code feature and the case-of feature of diabetes). E66
codes are frequent associated diagnoses of the synthetic worlds, so ``tiny`` has cases of it. No
Python file of respop names it (tests/spec/test_new_disease.py checks)."""

NEW_DISEASE = "obesity"

NEW_DISEASE_TOML = '''
[algorithm]
id = "obesity"
name = "Obésité hospitalisée"
version = "0.1"
date = 2026-12-01
description = "Personnes dont un séjour porte un code d'obésité (E66) : exemple d'une maladie ajoutée par un fichier."
sources = ["Exemple de test : maladie ajoutée sans toucher au code Python"]

[population]
min_age = 18

[window]
lookback_years = 1
min_stays = 1

[[branches]]
name = "dp_obesite"
label = "Obésité en diagnostic principal"
source = "exemple"
[[branches.all]]
codes = ["E66"]
positions = ["DP"]

[[branches]]
name = "das_obesite"
label = "Obésité en diagnostic associé"
[[branches.all]]
codes = ["E66"]
positions = ["DR", "DAS"]

[subtypes]
by = "codes"
default = "obesite_autre"
[[subtypes.types]]
name = "exces_calorique"
label = "Obésité due à un excès calorique"
codes = ["E660"]
[[subtypes.types]]
name = "obesite_autre"
label = "Autre obésité"

[strata]
description = "Profils d'exemple."
sources = ["exemple"]
[[strata.levels]]
name = "hospitalisations_repetees"
label = "Obésité, séjours répétés"
description = "Au moins deux séjours portant le code dans l'année."
when = "disease_stays_12m >= 2"
protocol = "Consultation spécialisée."
[[strata.levels]]
name = "renale"
label = "Obésité avec atteinte rénale"
description = "Maladie rénale chronique codée sur la période."
when = "ckd"
protocol = "Avis néphrologique."
[[strata.levels]]
name = "diabetique"
label = "Obésité chez une personne diabétique"
description = "Aussi un cas de diabète l'année même."
when = "case_of_diabetes"
protocol = "Coordination avec le suivi du diabète."
[[strata.levels]]
name = "autre"
label = "Obésité sans autre signe"
description = "Les autres."
protocol = "Suivi habituel."
'''
