"""Services own the unit of work: one transaction per user action."""
