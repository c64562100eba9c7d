"""spoken-digits: recognise spoken digits from mel spectrograms with RNNs, CNNs and hybrids.

Importing the package does nothing but define names: no downloads, no logging set-up.
"""

from spoken_digits.errors import (
    AudioError,
    CheckpointError,
    DatasetError,
    ParameterError,
    SpokenDigitsError,
)

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "CheckpointError",
    "DatasetError",
    "ParameterError",
    "SpokenDigitsError",
    "__version__",
]
