"""Pure arithmetic: exact parameter counts, peak memory, step time and tokens/s, hours and dollars, for one
configuration. No I/O; every formula names its source."""
