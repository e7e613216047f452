"""Small shared helpers below every other package: durable atomic files, CSV, figures, hashing,
import closures, process liveness and ownership, short stage failures, Prefect flow-run ownership."""
