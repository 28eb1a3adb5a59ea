"""Target-agnostic lowering of an int8 .tflite model: graph reading, TFLite's integer arithmetic, memory plan.

Shared by the backends that print code for a model without an interpreter (C today, MicroPython later)."""
