"""respop: responsabilité populationnelle from the French PMSI.

Health territories from hospital-stay flows, case finding for type 2 diabetes and heart failure,
risk strata, and boards for the réunions cliniques.
"""

__version__ = "0.1.0"
