"""After the search: which trial (targets), its final retrain and one look at the test rows (final), the
validation-overfit alarm (overfit, scoring), re-running its validation (verify), and what its regularizers
bought (ablation)."""
