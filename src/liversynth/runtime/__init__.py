"""Runtime: where and how torch runs (device, autocast, threads, determinism) and the machine it ran on."""
