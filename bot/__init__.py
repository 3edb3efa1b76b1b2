"""storyqueue: a Telegram approval bot for a team's Instagram Story queue."""
