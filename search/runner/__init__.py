"""Running a study: data prepared once, the trial loop (one process or workers), the objective, training,
checkpoints, recovery of lost trials, and stopping. Emits events to listeners; knows nothing of MLflow."""
