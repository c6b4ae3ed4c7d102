"""Integrations with training stacks: optimizer groups at each family's recommended rate
(:mod:`.optim`), the Hugging Face ``Trainer`` (:mod:`.trainer`) and ``torch.distributed`` data
parallelism (:mod:`.distributed`)."""
