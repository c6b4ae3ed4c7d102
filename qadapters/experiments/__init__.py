"""Applications built on the library: their shared core (:mod:`.core`: methods, building a LoRA or
qadapters model, the training loop, accuracy, sizes, result files), the MNIST demo (:mod:`.demo`,
:mod:`.mnist`), the MiniLM text fine-tune (:mod:`.finetune`), the QNN demo (:mod:`.qnn_demo`), and
their data, reports and console."""
