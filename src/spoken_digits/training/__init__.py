"""Training: the fit loop, whole runs with folds and resumption, string models and studies."""
