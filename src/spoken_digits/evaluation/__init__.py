"""Evaluation: scores, robustness under corruptions, plots and study reports."""
