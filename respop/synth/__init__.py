"""Synthetic PMSI-shaped data with known ground truth (``respop synth``).

See ``synthetic_data/README.md`` for the profiles and the world simulated.
"""

from respop.synth.generate import FAULTS, SynthResult, generate
from respop.synth.profiles import AGE_BANDS, Profile, load_profile

__all__ = ["AGE_BANDS", "FAULTS", "Profile", "SynthResult", "generate", "load_profile"]
