"""Database layer: engine, models, repositories, retry wrapper, embedded server."""
