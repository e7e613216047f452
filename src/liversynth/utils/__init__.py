"""Small shared helpers with no pipeline knowledge: durable atomic files, CSV, hashing, process liveness,
short stage failures, ownership of Prefect flow runs."""
