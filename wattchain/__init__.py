"""The programs: the `wattchain` command line, the demo, the simulated sites and the child
processes. The only layer that assembles the others (docs/architecture.md)."""
