"""The front end: audio files to waveforms, the speech detector, features, augmentation and corruptions."""
