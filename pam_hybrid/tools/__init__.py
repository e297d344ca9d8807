"""Tools the model may call: one module per tool, each registered in `registry`; `runner` runs a round of calls."""
