"""The decision core: the model, checks, statistics, the gate, pressure and the run's
decision. Pure: no pytest, no I/O."""
