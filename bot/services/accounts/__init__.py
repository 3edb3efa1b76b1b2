"""Per-chat Instagram accounts, one job per module.

`config` reads which account serves which chat; `clients` gives each chat its
InstagramClient and keeps its current token; `tokens` is what is known about a
token's health and `care` keeps it alive; `quota` guards the daily publishing
limit; `live` and `status` are the plain data /live and /status render.
"""
