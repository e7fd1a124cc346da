"""The Optuna side: storage (SQLite tuned for several processes), samplers seeded per trial, the two-level
pruner, the study's life cycle, queue and budget, and queries over its trials. Knows nothing of Keras."""
