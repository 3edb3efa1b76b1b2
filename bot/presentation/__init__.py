"""What the team sees: texts, captions, keyboards and views, apart from the rules."""
