"""Applications built on the library: the MNIST demo (:mod:`.demo`, :mod:`.mnist`), the MiniLM text
fine-tune (:mod:`.finetune`), the QNN demo (:mod:`.qnn_demo`), their data, reports and console."""
