"""Integrations with training stacks: the Hugging Face ``Trainer`` (:mod:`.trainer`) and
``torch.distributed`` data parallelism (:mod:`.distributed`)."""
