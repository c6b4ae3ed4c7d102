"""qadapters: parameter-efficient fine-tuning adapters that are parameterized quantum circuits."""

__version__ = "0.1.0"
