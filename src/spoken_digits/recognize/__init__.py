"""Recognising words in recordings: digit strings, live streams, files, the microphone."""
