"""The universal workflow as one study (``study.workflow: phased``): a no-network baseline to beat (phase 0),
capacity with every regularizer off until a model overfits (phase 1), then regularizers at that capacity
(phase 2); and the answer in the workflow's words."""
