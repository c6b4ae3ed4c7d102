"""Autograd kernels of the compound and hamming families: block-diagonal products that never form
the zero tiles (:mod:`.block_mix`) and feature-permuted block linears (:mod:`.permuted_blocks`)."""
