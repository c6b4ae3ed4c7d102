"""Quantum neural networks adapted by LCU circuits: the classifier and its training
(:mod:`.classifier`), running it on a backend (:mod:`.execution`) and quantum data sets
(:mod:`.quantum_data`)."""
