"""`syncd demo`: the whole cycle against the simulators."""
